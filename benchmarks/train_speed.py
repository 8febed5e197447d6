"""Training throughput and peak memory of the neural baselines.

1. On the sample (built into a temporary folder unless ``--dataset`` is given): sequences per
   second over ``--steps`` training steps of each model, with the default hyperparameters.
2. At the real data's catalogue size (383,670 tracks), one timed training step of SASRec with
   the full softmax (chunked, as the training loop does it), with the plain unchunked full
   softmax as the reference, and with the sampled softmax.

Each measurement runs in its own process so that its peak memory (max RSS on CPU, peak
allocated on CUDA) is its own. Run: ``python benchmarks/train_speed.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL_CATALOG = 383_670
MODELS = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")


def _peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _steps(model, windows, config, steps: int, device: str, loss_fn) -> list[float]:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    batch = config.batch_size
    times = []
    model.train()
    for step in range(steps + 1):  # the first step warms up and is not timed
        rows = torch.randint(0, len(windows), (batch,), generator=generator)
        data = torch.as_tensor(windows[rows.numpy()], device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            table = model.item_table()
            hidden, targets = model.loss_inputs(data, generator, table)
            loss = loss_fn(hidden, table, targets, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    return times


def one(kind: str, name: str, dataset: str, device: str, steps: int, batch: int) -> dict:
    """One measurement, in this process."""
    import numpy as np
    import torch

    from mmbench.baselines import runner, training
    from mmbench.baselines.data import Benchmark

    module_name = runner.BASELINES[name if kind == "sample" else "sasrec"]
    module = __import__(module_name, fromlist=["build"])
    config = runner.model_config(name if kind == "sample" else "sasrec").replace(batch_size=batch)
    training.seed_everything(0)
    if kind == "sample":
        data = Benchmark(dataset)
        windows = training.training_windows(data, config.max_len)
        model = module.build(len(data.track_ids), config, data).to(device)
        n_items = len(data.track_ids)
    else:
        n_items = REAL_CATALOG
        rng = np.random.default_rng(0)
        windows = rng.integers(1, n_items + 1, size=(4096, config.max_len + 1))
        model = module.build(n_items, config).to(device)
    allowed = getattr(model, "trainable", None)
    if kind == "sampled":

        def loss_fn(h, table, t, g):
            return training.sampled_softmax_loss(h, table, t, config.negatives, g, allowed)

    elif kind == "plain":

        def loss_fn(h, table, t, g):
            keep = t > 0
            return torch.nn.functional.cross_entropy((h[keep] @ table[1:].T).float(), t[keep] - 1)

    else:

        def loss_fn(h, table, t, g):
            return training.full_softmax_loss(h, table, t, allowed)

    times = _steps(model, windows, config, steps, device, loss_fn)
    step = statistics.median(times)
    return {
        "kind": kind,
        "model": name,
        "items": n_items,
        "batch": batch,
        "step_s": step,
        "sequences_per_s": batch / step,
        "peak_mb": _peak_mb(device),
    }


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=os.environ
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", help="A sample build (default: build one in a temporary folder).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per model on the sample.")
    parser.add_argument("--real-steps", type=int, default=3, help="Timed steps at the real catalogue size.")
    parser.add_argument("--real-batch", type=int, default=32, help="Batch at the real catalogue size.")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, name, dataset, device, steps, batch = args.child
        print(json.dumps(one(kind, name, dataset, device, int(steps), int(batch))))
        return
    dataset = args.dataset
    if dataset is None:
        dataset = str(Path(tempfile.mkdtemp()) / "sample")
        subprocess.run(["mmbench", "build", "--sample", "--quiet", "--out", dataset], check=True)
    print(f"device: {args.device}; torch threads: default; sample build: {dataset}")
    print(f"\n{'model':<11} {'items':>8} {'batch':>5} {'step ms':>9} {'seq/s':>9} {'peak MB':>9}")
    rows = [run_child("sample", m, dataset, args.device, str(args.steps), "128") for m in MODELS]
    rows += [
        run_child(kind, "sasrec", dataset, args.device, str(args.real_steps), str(args.real_batch))
        for kind in ("full", "plain", "sampled")
    ]
    for row in rows:
        if "error" in row:
            print(f"failed: {row['error']}")
            continue
        label = row["model"] if row["kind"] == "sample" else f"sasrec/{row['kind']}"
        print(
            f"{label:<11} {row['items']:>8,} {row['batch']:>5} {row['step_s'] * 1000:>9.1f} "
            f"{row['sequences_per_s']:>9.1f} {row['peak_mb']:>9.0f}"
        )
    print(
        "\nfull = the training loop's chunked full softmax; plain = one unchunked cross-entropy "
        "(the reference); sampled = sampled softmax with the config's negatives."
    )


if __name__ == "__main__":
    main()
