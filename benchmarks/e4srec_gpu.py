"""E4SRec's training step at the real catalogue's size on one device: step time, sequences/s and
peak memory, for each precision, head, content and loss.

A decoder of a preset's shape with random weights (nothing is downloaded; the weights do not
matter for speed) is written once under ``--scratch`` with the packaged tokenizer and loaded
back by ``e4srec.load_backbone``, the code a training run uses, with LoRA r=32 on every
projection:

- ``bf16`` (fp32 on a CPU), and ``nf4`` (4 bits with double quantisation and non-reentrant
  gradient checkpointing; CUDA with bitsandbytes only, else the row says why it was skipped);
- the ``linear`` head (a row per track) and the ``tied`` head (the fused item representations);
- ID only (``none``) and with a 128-d content config (``content``) fused with the ID part;
- the chunked full softmax (``full``) and a sampled softmax of 256 negatives (``sampled``).

The optimizer is the loop's (paged 8-bit AdamW on CUDA with bitsandbytes). Each row is the
median step time over ``--steps`` steps after one warm-up step, on the same batches of windows
of 50 items, and the peak accelerator memory of that row (on a CPU: the process's peak resident
memory so far). ``--completions`` adds the completion modes (``prompt`` adds a few text tokens
per item). The output is the markdown table of docs/baselines.md ("E4SRec on a GPU").

Run: ``python benchmarks/e4srec_gpu.py [--device cuda] [--shape qwen2.5-7b] [--batch 8] [--steps 4]``;
on a CPU: ``--device cpu --shape smollm2-135m --catalogue 1470 --precisions bf16``.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmbench.baselines import e4srec
from mmbench.baselines.runner import model_config
from mmbench.baselines.training import (
    COMPLETION_BUCKETS,
    adamw,
    full_softmax_loss,
    sampled_softmax_loss,
)
from mmbench.llm import packaged_llm

SHAPES = {  # transformers config classes and their sizes (from the models' published configs)
    "qwen2.5-7b": (
        "Qwen2Config",
        dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
        ),
    ),
    "smollm2-135m": (
        "LlamaConfig",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49152,
        ),
    ),
    "tiny": (
        "LlamaConfig",
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=49152,
        ),
    ),
}


def write_backbone(shape: str, folder: Path) -> Path:
    """A decoder of ``shape`` with random bf16 weights (seed 0) and the packaged tokenizer, saved
    as a transformers folder that ``backbone=FOLDER`` loads."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    kind, sizes = SHAPES[shape]
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init is fast on a GPU
    with torch.device(device):
        model = AutoModel.from_config(getattr(transformers, kind)(**sizes), dtype=torch.bfloat16)
    model.save_pretrained(folder)
    location, options = packaged_llm("benchmarks/e4srec_gpu.py")
    AutoTokenizer.from_pretrained(location, **options).save_pretrained(folder)
    del model
    return folder


def model_of(
    backbone: torch.nn.Module, tokenizer, config: e4srec.Settings, catalogue: int, content: bool
) -> e4srec.E4SRec:
    """E4SRec over ``backbone`` for a catalogue of ``catalogue`` tracks: a random 64-d ID table
    and, with ``content``, a random 128-d content config (its last column the presence flag)."""
    rng = np.random.default_rng(0)
    id_table = rng.normal(size=(catalogue + 1, 64)).astype(np.float32)
    features = {}
    if content:
        feature = rng.normal(size=(catalogue + 1, 129)).astype(np.float32)
        feature[:, -1] = 1.0
        features["content"] = feature
    trained = np.ones(catalogue + 1)
    trained[0] = 0
    dropout = np.zeros(catalogue + 1)
    return e4srec.E4SRec(backbone, tokenizer, id_table, features, trained, dropout, [], config)


def step_time(
    model: e4srec.E4SRec,
    config: e4srec.Settings,
    batches: list[torch.Tensor],
    loss: str,
    device: torch.device,
) -> tuple[float, float]:
    """Median seconds per optimizer step and peak memory (GiB) of one row."""
    generator = torch.Generator().manual_seed(0)
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], config)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    allowed = getattr(model, "trainable", None)
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        with autocast:
            hidden, targets, table = model(batch, generator)
            if loss == "full":
                value = full_softmax_loss(hidden, table, targets, allowed)
            else:
                value = sampled_softmax_loss(hidden, table, targets, config.negatives, generator, allowed)
        value.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:  # the process's peak resident memory so far (Linux reports KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del optimizer
    return statistics.median(times), peak


def nf4_unavailable(device: torch.device) -> str:
    """Why nf4 cannot run here, or "" when it can."""
    if device.type != "cuda":
        return "needs CUDA"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return "needs bitsandbytes"
    return ""


HEADER = (
    "| shape | precision | head | content | completion | loss | step (s) | sequences/s | peak memory (GiB) |\n"
    "|---|---|---|---|---|---|---:|---:|---:|"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-7b")
    parser.add_argument("--catalogue", type=int, default=383_670)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--precisions", nargs="+", choices=["bf16", "nf4"], default=["bf16", "nf4"])
    parser.add_argument("--heads", nargs="+", choices=e4srec.HEADS, default=list(e4srec.HEADS))
    parser.add_argument("--contents", nargs="+", choices=["none", "content"], default=["none", "content"])
    parser.add_argument("--losses", nargs="+", choices=["full", "sampled"], default=["full", "sampled"])
    parser.add_argument("--completions", nargs="+", choices=e4srec.COMPLETIONS, default=["none"])
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "e4srec-gpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    folder = write_backbone(args.shape, args.scratch / args.shape)
    rng = torch.Generator().manual_seed(1)
    shape = (args.batch, args.max_len + 1)
    items = [torch.randint(1, args.catalogue + 1, shape, generator=rng) for _ in range(args.steps + 1)]
    ratios = [torch.randint(1, COMPLETION_BUCKETS, shape, generator=rng) for _ in range(args.steps + 1)]
    print(
        f"{args.shape} (random weights) on {device}: catalogue {args.catalogue:,}, batches of "
        f"{args.batch} windows of {args.max_len} items, median of {args.steps} steps\n"
    )
    print(HEADER, flush=True)
    for precision in args.precisions:
        label = "fp32" if precision == "bf16" and device.type == "cpu" else precision
        cells = f"| {args.shape} | {label} |"
        why = nf4_unavailable(device) if precision == "nf4" else ""
        if why:
            print(f"{cells} | | | | skipped: {why} | | |", flush=True)
            continue
        base = model_config("e4srec").replace(
            backbone=str(folder),
            device=str(device),
            quantization="nf4" if precision == "nf4" else "none",
            gradient_checkpointing=precision == "nf4",
        )
        backbone, tokenizer = e4srec.load_backbone(base)
        for head, content, completion in itertools.product(args.heads, args.contents, args.completions):
            config = base.replace(head=head, completion=completion)
            model = model_of(backbone, tokenizer, config, args.catalogue, content == "content").to(device)
            model.train()
            batches = (
                items
                if completion == "none"
                else [torch.stack(p, 1) for p in zip(items, ratios, strict=True)]
            )
            batches = [b.to(device) for b in batches]
            for loss in args.losses:
                seconds, peak = step_time(model, config, batches, loss, device)
                print(
                    f"{cells} {head} | {content} | {completion} | {loss} | {seconds:.3f} | "
                    f"{args.batch / seconds:.2f} | {peak:.1f} |",
                    flush=True,
                )
            del model
        del backbone


if __name__ == "__main__":
    main()
