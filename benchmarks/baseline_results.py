"""The results table of docs/baselines.md: every baseline on the sample's next-track test split.

Trains each baseline through the CLI (the neural ones once per seed), writes its predictions,
scores them with `mmbench evaluate --json`, compares each against `pop` (seed 0) and `sasrec-mm`
against `sasrec` for every seed, overall and on the cold and tail segments, with
`mmbench compare --json`, and prints a markdown table: NDCG@10, Recall@10,
MRR@10 with the 95% bootstrap interval (memory-based models) or mean ± std over the seeds and
the interval of seed 0 (neural models).

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


def run(model: str, seed: int | None, dataset: str, out: Path) -> dict:
    tag = model if seed is None else f"{model}-seed{seed}"
    report = out / f"{tag}.report.json"
    if not report.exists():
        extra = [] if seed is None else ["--set", f"seed={seed}"]
        sh("baseline", "train", model, "--dataset", dataset, "--out", str(out / tag), "--quiet", *extra)
        sh("baseline", "predict", str(out / tag), "--out", str(out / f"{tag}.jsonl"), "--quiet")
        sh("evaluate", str(out / f"{tag}.jsonl"), "--dataset", dataset, "--json", str(report))
    return json.loads(report.read_text())


def compare(a: str, b: str, seed: int, segment: str | None, args: argparse.Namespace) -> str:
    """`mmbench compare` of two runs (the neural ones of one seed): NDCG@10 difference B - A,
    its interval, the Holm-corrected randomization p-value and whether it is significant."""
    tag = {m: m if m in MEMORY else f"{m}-seed{seed}" for m in (a, b)}
    name = f"compare-{tag[a]}-{tag[b]}" + (f"-{segment.replace('=', '-')}" if segment else "")
    path = args.out / f"{name}.json"
    if not path.exists():
        extra = ["--segment", segment] if segment else []
        sh(
            "compare",
            str(args.out / f"{tag[a]}.jsonl"),
            str(args.out / f"{tag[b]}.jsonl"),
            "--dataset",
            args.dataset,
            "--k",
            "10",
            "--json",
            str(path),
            *extra,
        )
    report = json.loads(path.read_text())
    ndcg = next(r for r in report["metrics"] if r["metric"] == "ndcg@10")
    return (
        f"n={report['n_instances']} NDCG@10 {ndcg['difference']:+.4f} [{ndcg['ci_low']:+.4f}, "
        f"{ndcg['ci_high']:+.4f}], p (randomization, Holm) {ndcg['p_randomization_holm']:.4f}"
        + (" significant" if ndcg["significant"] else "")
    )


def cell(reports: list[dict], metric: str) -> str:
    values = [r["metrics"][metric]["value"] for r in reports]
    first = reports[0]["metrics"][metric]
    interval = f"[{first['ci_low']:.4f}, {first['ci_high']:.4f}]"
    if len(values) == 1:
        return f"{values[0]:.4f} {interval}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} {interval}"


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
    pairs = [("pop", m) for m in ("user-repeat", "sknn", *NEURAL)] + [("sasrec", "sasrec-mm")]
    for a, b in pairs:
        print(f"{b} - {a}: {compare(a, b, 0, None, args)}")
    print()
    for seed in range(args.seeds):  # the content model against its ID-only twin, seed by seed
        for segment in (None, "target_cold=cold", "target_popularity=tail"):
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
