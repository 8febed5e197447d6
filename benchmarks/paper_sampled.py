"""How much of the paper-sampled protocol a history lookup wins, next to the official task.

On `paper-sampled` the 199 negatives exclude every track of the instance's input, so a target the
user heard before is the only heard candidate, and ranking the user's own plays first finds it.
This script trains `pop`, the `history-lookup` probe (the user's heard tracks by recency) and
`sasrec` (one run per seed), ranks the test instances of both tasks, scores them with
`mmbench evaluate --json`, and prints, per task: chance, each model's NDCG@10 and Recall@10
(overall and on targets heard before / new), the share of heard targets, and the paired
comparison of the probe with sasrec (the folder of sasrec's seeds: an instance's metric is its
mean over the seeds). With ``--docs`` the tables go into docs/protocol.md between its markers.

Run: ``python benchmarks/paper_sampled.py --dataset demo-out --out paper-results [--seeds 3]
[--models results] [--docs]``; ``--models`` reuses the folders `baseline_results.py` trained
(``results/sasrec-seed0`` ...). Finished steps are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from baseline_results import sh, write_block  # the sibling script (benchmarks/ is on the path when run)

from mmbench.schema import DATASET_VERSION

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"

TASKS = ("paper-sampled", "next-track")


def model_runs(
    model: str, seeds: list[int | None], dataset: str, out: Path, models: Path | None = None
) -> dict[str, list[dict]]:
    """Train once per seed (or reuse ``models/TAG``), rank both tasks' test instances, return
    the reports per task."""
    reports: dict[str, list[dict]] = {task: [] for task in TASKS}
    for seed in seeds:
        tag = model if seed is None else f"{model}-seed{seed}"
        folder = (models or out / "models") / tag
        if not (folder / "config.json").exists():
            extra = [] if seed is None else ["--set", f"seed={seed}"]
            sh("baseline", "train", model, "--dataset", dataset, "--out", str(folder), "--quiet", *extra)
        for task in TASKS:
            path = out / "runs" / task / model / f"{tag}.jsonl"
            report = path.with_suffix(".report.json")
            if not report.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                sh("baseline", "predict", str(folder), "--task", task, "--out", str(path), "--quiet")
                sh("evaluate", str(path), "--dataset", dataset, "--task", task, "--json", str(report))
            reports[task].append(json.loads(report.read_text()))
    return reports


def value(reports: list[dict], metric: str, group: str | None = None) -> str:
    def one(r: dict) -> float:
        entry = r["metrics"] if group is None else r["segments"]["target_heard_before"][group]
        return entry[metric]["value"]

    values = [one(r) for r in reports]
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", type=Path, default=None, help="Reuse trained folders (MODELS/TAG).")
    parser.add_argument("--docs", action="store_true", help="Write the tables into docs/protocol.md.")
    args = parser.parse_args()
    results = {
        "pop": model_runs("pop", [None], args.dataset, args.out, args.models),
        "history-lookup": model_runs("history-lookup", [None], args.dataset, args.out, args.models),
        "sasrec": model_runs("sasrec", list(range(args.seeds)), args.dataset, args.out, args.models),
    }
    lines = [
        f"Measured by `python benchmarks/paper_sampled.py --dataset DIR --out paper-results --seeds {args.seeds} "
        f"--docs` on the sample, dataset version {DATASET_VERSION}, test split (written by the script); "
        f"`sasrec` is the mean ± std of {args.seeds} seeds, its settings chosen on validation; `history-lookup` "
        "is the protocol probe.",
    ]
    for task in TASKS:
        first = results["pop"][task][0]
        history = first["segments"]["target_heard_before"]
        n, heard = first["n_instances"], history["true"]["n"]
        lines += ["", f"`{task}` (test): {n} instances, {heard} targets heard before ({heard / n:.1%}).", ""]
        lines += [
            "| model | NDCG@10 | Recall@10 | NDCG@10, heard before | NDCG@10, new |",
            "|---|---|---|---|---|",
        ]
        chance = first["chance"]
        lines.append(f"| chance | {chance['ndcg@10']:.4f} | {chance['recall@10']:.4f} | | |")
        for model, reports in results.items():
            name = model if model != "sasrec" else f"sasrec ({args.seeds} seeds)"
            cells = [value(reports[task], m) for m in ("ndcg@10", "recall@10")]
            cells += [value(reports[task], "ndcg@10", g) for g in ("true", "false")]
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        comparison = args.out / f"compare-{task}.json"
        if not comparison.exists():
            sh(
                "compare",
                str(args.out / "runs" / task / "history-lookup" / "history-lookup.jsonl"),
                str(args.out / "runs" / task / "sasrec"),
                "--dataset",
                args.dataset,
                "--task",
                task,
                "--k",
                "10",
                "--json",
                str(comparison),
            )
        row = next(r for r in json.loads(comparison.read_text())["metrics"] if r["metric"] == "ndcg@10")
        lines += [
            "",
            f"sasrec − history-lookup, NDCG@10 (paired over the {n} instances, sasrec's runs averaged per "
            f"instance): {row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], randomization "
            f"p (Holm) {row['p_randomization_holm']:.2g}" + (", significant" if row["significant"] else ""),
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.docs:
        write_block(DOCS, "paper-sampled", text)


if __name__ == "__main__":
    main()
