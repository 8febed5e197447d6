"""Choose the settings of `sasrec` and `sasrec-mm` on the validation split only.

Trains every point of a small grid for each model and seed through the CLI and reads the
validation NDCG@10 of the restored best epoch from the model's ``config.json`` (the number
early stopping maximised). Each model's grid covers the settings that are its own: `sasrec`'s
dropout, and `sasrec-mm`'s ID dropout and its dropout on the training period's newest tracks.
`sasrec-mm` is tuned on top of `sasrec`'s best point (the same network with content added).
The test split is never read. Prints a markdown table (mean ± std over the seeds) and marks
each model's best point.

Run: ``python benchmarks/tune_baselines.py --dataset demo-out --out tuning [--seeds 2]``.
Finished runs are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

GRID: dict[str, list[dict[str, float]]] = {
    "sasrec": [{"dropout": d} for d in (0.1, 0.2, 0.3)],
    # Tuned on top of sasrec's best settings, which it shares (same network, content added).
    "sasrec-mm": [
        {"id_dropout": i, "new_share": 0.15, "new_id_dropout": n} for i in (0.1, 0.3) for n in (i, 0.9)
    ],
}


def validation_ndcg(model: str, settings: dict[str, float], seed: int, args: argparse.Namespace) -> float:
    tag = "-".join([model, *(f"{k}{v}" for k, v in settings.items()), f"seed{seed}"])
    folder = args.out / tag
    if not (folder / "config.json").exists():
        overrides = [x for k, v in {**settings, "seed": seed}.items() for x in ("--set", f"{k}={v}")]
        subprocess.run(
            ["mmbench", "baseline", "train", model, "--dataset", args.dataset, "--out", str(folder)]
            + ["--quiet", *overrides],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    training = json.loads((folder / "config.json").read_text())["training"]
    return max(e["validation_ndcg@10"] for e in training["epochs"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| model | settings | validation NDCG@10 (mean ± std over seeds) | per seed |")
    print("|---|---|---|---|")
    inherited: dict[str, float] = {}
    for model, points in GRID.items():
        grid = [{**inherited, **point} for point in points]
        scores = [[validation_ndcg(model, s, seed, args) for seed in range(args.seeds)] for s in grid]
        means = [statistics.mean(v) for v in scores]
        best = max(range(len(grid)), key=means.__getitem__)
        inherited = grid[best]
        for i, (settings, values) in enumerate(zip(grid, scores, strict=True)):
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            mark = " **best**" if i == best else ""
            text = ", ".join(f"{k}={v}" for k, v in settings.items())
            per_seed = ", ".join(f"{v:.4f}" for v in values)
            print(f"| `{model}` | {text} | {means[i]:.4f}{spread}{mark} | {per_seed} |", flush=True)


if __name__ == "__main__":
    main()
