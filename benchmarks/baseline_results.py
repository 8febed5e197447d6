"""The results table of docs/baselines.md: every baseline on the sample's next-track test split.

Trains each baseline through the CLI (the neural ones once per seed, their predictions in
``runs/MODEL/seedS.jsonl``), scores them with `mmbench evaluate --json`, and prints a markdown
table: NDCG@10, Recall@10, MRR@10 with the 95% bootstrap interval (memory-based models) or
mean ± std over the seeds and the interval of seed 0 (neural models). Then compares with
`mmbench compare --json`: each model against `pop` (a neural model by the folder of its seeds'
runs, so an instance's metric is its mean over the seeds), and `sasrec-mm` against `sasrec`
over all seeds and seed by seed, overall and on the cold and tail segments.

Run: ``python benchmarks/baseline_results.py --dataset demo-out --out results [--seeds 5]``.
Finished runs are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

MEMORY = ("pop", "user-repeat", "sknn")
NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
METRICS = ("ndcg@10", "recall@10", "mrr@10")


def sh(*args: str) -> None:
    subprocess.run(["mmbench", *args], check=True, stdout=subprocess.DEVNULL)


def predictions(model: str, seed: int | None, out: Path) -> Path:
    return out / f"{model}.jsonl" if seed is None else out / "runs" / model / f"seed{seed}.jsonl"


def run(model: str, seed: int | None, dataset: str, out: Path) -> dict:
    tag = model if seed is None else f"{model}-seed{seed}"
    report = out / f"{tag}.report.json"
    if not report.exists():
        extra = [] if seed is None else ["--set", f"seed={seed}"]
        sh("baseline", "train", model, "--dataset", dataset, "--out", str(out / tag), "--quiet", *extra)
        path = predictions(model, seed, out)
        path.parent.mkdir(parents=True, exist_ok=True)
        sh("baseline", "predict", str(out / tag), "--out", str(path), "--quiet")
        sh("evaluate", str(path), "--dataset", dataset, "--json", str(report))
    return json.loads(report.read_text())


def compare(a: str, b: str, seed: int | None, segment: str | None, args: argparse.Namespace) -> str:
    """`mmbench compare` of two models: NDCG@10 difference B - A, its interval, the
    Holm-corrected randomization p-value and whether it is significant. A neural model is its
    run of ``seed``, or with ``seed=None`` the folder of all its seeds' runs."""
    side = {m: (m, predictions(m, None, args.out)) for m in MEMORY}
    for m in NEURAL:
        side[m] = (
            (f"{m}-seeds", args.out / "runs" / m)
            if seed is None
            else (f"{m}-seed{seed}", predictions(m, seed, args.out))
        )
    name = f"compare-{side[a][0]}-{side[b][0]}" + (f"-{segment.replace('=', '-')}" if segment else "")
    return compare_paths(side[a][1], side[b][1], args.out / f"{name}.json", args.dataset, segment)


def compare_paths(
    a: Path, b: Path, report: Path, dataset: str, segment: str | None = None, task: str = "next-track"
) -> str:
    """`mmbench compare A B --json REPORT` (reused when REPORT exists), as one line: NDCG@10
    difference B - A, its interval, the Holm-corrected randomization p-value, significance."""
    if not report.exists():
        extra = ["--segment", segment] if segment else []
        sh(
            "compare",
            str(a),
            str(b),
            "--dataset",
            dataset,
            "--task",
            task,
            "--k",
            "10",
            "--json",
            str(report),
            *extra,
        )
    result = json.loads(report.read_text())
    ndcg = next(r for r in result["metrics"] if r["metric"] == "ndcg@10")
    return (
        f"n={result['n_instances']} NDCG@10 {ndcg['difference']:+.4f} [{ndcg['ci_low']:+.4f}, "
        f"{ndcg['ci_high']:+.4f}], p (randomization, Holm) {ndcg['p_randomization_holm']:.4f}"
        + (" significant" if ndcg["significant"] else "")
    )


def cell(reports: list[dict], metric: str, segment: tuple[str, str] | None = None) -> str:
    """One table cell: the value (mean ± std over several reports) and the first report's 95%
    interval, overall or on one segment (group, value) of the reports."""

    def one(r: dict) -> dict:
        return r["metrics"] if segment is None else r["segments"][segment[0]][segment[1]]

    values = [one(r).get(metric, {}).get("value", 0.0) for r in reports]
    first = one(reports[0]).get(metric, {})
    interval = f" [{first['ci_low']:.4f}, {first['ci_high']:.4f}]" if "ci_low" in first else ""
    if len(values) == 1:
        return f"{values[0]:.4f}{interval}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}{interval}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {m: [run(m, None, args.dataset, args.out)] for m in MEMORY}
    for model in NEURAL:
        results[model] = [run(model, s, args.dataset, args.out) for s in range(args.seeds)]
    chance = results["pop"][0]["chance"]
    print("| model | NDCG@10 | Recall@10 | MRR@10 |")
    print("|---|---|---|---|")
    print("| chance | " + " | ".join(f"{chance[m]:.4f}" for m in METRICS) + " |")
    for model, reports in results.items():
        print(f"| `{model}` | " + " | ".join(cell(reports, m) for m in METRICS) + " |")
    print()
    segments = (None, "target_cold=cold", "target_popularity=tail")
    for b in ("user-repeat", "sknn", *NEURAL):
        over = "" if b in MEMORY else f" (mean over {args.seeds} seeds)"
        print(f"{b} - pop{over}: {compare('pop', b, None, None, args)}")
    print()
    for segment in segments:
        result = compare("sasrec", "sasrec-mm", None, segment, args)
        print(
            f"sasrec-mm - sasrec (mean over {args.seeds} seeds){' on ' + segment if segment else ''}: {result}"
        )
    for seed in range(args.seeds):  # seed by seed, to show how much one seed's test can say
        for segment in segments:
            result = compare("sasrec", "sasrec-mm", seed, segment, args)
            print(f"seed {seed} sasrec-mm - sasrec{' on ' + segment if segment else ''}: {result}")
    for segment, group in (("target_cold", "cold"), ("target_popularity", "tail")):
        line = []
        for model in ("sasrec", "sasrec-mm"):
            values = [
                r["segments"][segment][group].get("ndcg@10", {}).get("value", 0.0) for r in results[model]
            ]
            n = results[model][0]["segments"][segment][group]["n"]
            line.append(f"{model} {statistics.mean(values):.4f}")
        print(f"{segment}={group} (n={n}): NDCG@10 " + ", ".join(line))


if __name__ == "__main__":
    main()
