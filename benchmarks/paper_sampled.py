"""How much of the paper-sampled protocol a history lookup wins, next to the official task.

On `paper-sampled` the 199 negatives exclude every track of the instance's input, so a target the
user heard before is the only heard candidate, and ranking the user's own plays first finds it.
This script trains `pop`, `user-repeat` (the user's most played tracks: a pure history lookup)
and `sasrec` (one run per seed), ranks the test instances of both tasks, scores them with
`mmbench evaluate --json`, and prints, per task: chance, each model's NDCG@10 and Recall@10
(overall and on targets heard before / new), the share of heard targets, and the paired
comparison of user-repeat with sasrec (the folder of sasrec's seeds: an instance's metric is its
mean over the seeds).

Run: ``python benchmarks/paper_sampled.py --dataset demo-out --out paper-results [--seeds 3]``.
Finished steps are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from baseline_results import sh  # the sibling script (benchmarks/ is on the path when run)

TASKS = ("paper-sampled", "next-track")


def model_runs(model: str, seeds: list[int | None], dataset: str, out: Path) -> dict[str, list[dict]]:
    """Train once per seed, rank both tasks' test instances, return the reports per task."""
    reports: dict[str, list[dict]] = {task: [] for task in TASKS}
    for seed in seeds:
        tag = model if seed is None else f"{model}-seed{seed}"
        folder = out / "models" / tag
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
    args = parser.parse_args()
    results = {
        "pop": model_runs("pop", [None], args.dataset, args.out),
        "user-repeat": model_runs("user-repeat", [None], args.dataset, args.out),
        "sasrec": model_runs("sasrec", list(range(args.seeds)), args.dataset, args.out),
    }
    for task in TASKS:
        first = results["pop"][task][0]
        history = first["segments"]["target_heard_before"]
        n, heard = first["n_instances"], history["true"]["n"]
        print(f"\n{task} (test): {n} instances, {heard} targets heard before ({heard / n:.1%})")
        print("| model | NDCG@10 | Recall@10 | NDCG@10, heard before | NDCG@10, new |")
        print("|---|---|---|---|---|")
        chance = first["chance"]
        print(f"| chance | {chance['ndcg@10']:.4f} | {chance['recall@10']:.4f} | | |")
        for model, reports in results.items():
            name = model if model != "sasrec" else f"sasrec ({args.seeds} seeds)"
            cells = [value(reports[task], m) for m in ("ndcg@10", "recall@10")]
            cells += [value(reports[task], "ndcg@10", g) for g in ("true", "false")]
            print(f"| `{name}` | " + " | ".join(cells) + " |")
        comparison = args.out / f"compare-{task}.json"
        if not comparison.exists():
            sh(
                "compare",
                str(args.out / "runs" / task / "user-repeat" / "user-repeat.jsonl"),
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
        print(
            f"sasrec - user-repeat NDCG@10 {row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], "
            f"p (randomization, Holm) {row['p_randomization_holm']:.4f}"
            + (" significant" if row["significant"] else "")
        )


if __name__ == "__main__":
    main()
