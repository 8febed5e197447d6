"""The results section of docs/baselines.md: every baseline and protocol probe on the sample's
next-track test split.

Trains each baseline through the CLI (the neural ones once per seed, their predictions in
``runs/MODEL/seedS.jsonl``), scores them with `mmbench evaluate --json` and compares them with
`mmbench compare --json`. Prints, and with ``--docs`` writes between the markers of
docs/baselines.md:

- the overall table: NDCG@10, Recall@10, MRR@10 with the 95% bootstrap interval (memory-based
  models and probes: one deterministic run) or mean ± std over the seeds and seed 0's interval,
  and NDCG@10 of the same trained models with the session prefix kept rankable (the ablation of
  the prefix rule: `mmbench baseline predict --keep-prefix`);
- every model and probe per segment (heard before, new, cold, cold and new to the user, tail):
  NDCG@10 and Recall@100;
- paired comparisons: each model against `pop`; `sasrec-mm` against `sasrec` over all seeds and
  seed by seed; the content model against the `unseen-first` probe on the cold segments and the
  best model against `history-lookup` on the heard targets.

Run: ``python benchmarks/baseline_results.py --dataset demo-out --out results [--seeds 5] [--docs]``.
Finished runs are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

from mmbench.baselines import PROBES

MEMORY = ("pop", "user-repeat", "sknn")
NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
METRICS = ("ndcg@10", "recall@10", "mrr@10")
SEGMENTS = (
    ("target_heard_before", "true", "heard before"),
    ("target_heard_before", "false", "new to the user"),
    ("target_cold", "true", "cold"),
    ("target_cold_new", "true", "cold and new to the user"),
    ("target_popularity", "tail", "tail"),
)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "baselines.md"


def sh(*args: str) -> None:
    subprocess.run(["mmbench", *args], check=True, stdout=subprocess.DEVNULL)


def deterministic(model: str) -> bool:
    return model in MEMORY or model in PROBES


def predictions(model: str, seed: int | None, out: Path, keep_prefix: bool = False) -> Path:
    suffix = "-keep-prefix" if keep_prefix else ""
    if seed is None:
        return out / f"{model}{suffix}.jsonl"
    return out / f"runs{suffix}" / model / f"seed{seed}.jsonl"


def run(model: str, seed: int | None, dataset: str, out: Path, keep_prefix: bool = False) -> dict:
    """Train (once), predict and evaluate one run; the report. Each step runs only when its
    output is missing (the model folder is trained even where a kept report and predictions
    were taken back without it: other runs start from its weights)."""
    tag = model if seed is None else f"{model}-seed{seed}"
    report = out / f"{tag}{'-keep-prefix' if keep_prefix else ''}.report.json"
    if not (out / tag / "config.json").exists():
        extra = [] if seed is None else ["--set", f"seed={seed}"]
        sh("baseline", "train", model, "--dataset", dataset, "--out", str(out / tag), "--quiet", *extra)
    path = predictions(model, seed, out, keep_prefix)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        flag = ["--keep-prefix"] if keep_prefix else []
        sh("baseline", "predict", str(out / tag), "--out", str(path), "--quiet", *flag)
    if not report.exists():
        sh("evaluate", str(path), "--dataset", dataset, "--json", str(report))
    return json.loads(report.read_text())


def side(model: str, seed: int | None, out: Path) -> tuple[str, Path]:
    """The name and path of a model in a comparison: a deterministic model's file, a neural
    model's run of ``seed``, or with ``seed=None`` the folder of all its seeds' runs."""
    if deterministic(model):
        return model, predictions(model, None, out)
    if seed is None:
        return f"{model}-seeds", out / "runs" / model
    return f"{model}-seed{seed}", predictions(model, seed, out)


def compare(a: str, b: str, seed: int | None, segment: str | None, args: argparse.Namespace) -> dict:
    (name_a, path_a), (name_b, path_b) = side(a, seed, args.out), side(b, seed, args.out)
    name = f"compare-{name_a}-{name_b}" + (f"-{segment.replace('=', '-')}" if segment else "")
    return compare_row(path_a, path_b, args.out / f"{name}.json", args.dataset, segment)


def compare_row(
    a: Path, b: Path, report: Path, dataset: str, segment: str | None = None, task: str = "next-track"
) -> dict:
    """`mmbench compare A B --json REPORT` (reused when REPORT exists); its NDCG@10 row with
    the number of instances."""
    if not report.exists():
        extra = ["--segment", segment] if segment else []
        sh("compare", str(a), str(b), "--dataset", dataset, "--task", task, "--k", "10", "--json", str(report), *extra)  # fmt: skip
    result = json.loads(report.read_text())
    return {**next(r for r in result["metrics"] if r["metric"] == "ndcg@10"), "n": result["n_instances"]}


def comparison_cells(row: dict) -> str:
    """``difference [interval] | p`` of a comparison's NDCG@10 row, * when significant."""
    star = " *" if row["significant"] else ""
    return (
        f"{row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] | "
        f"{row['p_randomization_holm']:.2g}{star}"
    )


def compare_paths(
    a: Path, b: Path, report: Path, dataset: str, segment: str | None = None, task: str = "next-track"
) -> str:
    """:func:`compare_row` as one line: NDCG@10 difference B - A, its interval, the
    Holm-corrected randomization p-value, significance."""
    row = compare_row(a, b, report, dataset, segment, task)
    return (
        f"n={row['n']} NDCG@10 {row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], "
        f"p (randomization, Holm) {row['p_randomization_holm']:.4f}"
        + (" significant" if row["significant"] else "")
    )


def cell(
    reports: list[dict], metric: str, segment: tuple[str, str] | None = None, interval: bool = True
) -> str:
    """One table cell: the value (mean ± std over several reports) and the first report's 95%
    interval, overall or on one segment (column, value) of the reports."""

    def one(r: dict) -> dict:
        return r["metrics"] if segment is None else r["segments"][segment[0]][segment[1]]

    values = [one(r).get(metric, {}).get("value", 0.0) for r in reports]
    first = one(reports[0]).get(metric, {})
    ci = f" [{first['ci_low']:.4f}, {first['ci_high']:.4f}]" if interval and "ci_low" in first else ""
    if len(values) == 1:
        return f"{values[0]:.4f}{ci}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}{ci}"


def label(model: str) -> str:
    return f"`{model}` (probe)" if model in PROBES else f"`{model}`"


def section(results: dict, kept: dict, args: argparse.Namespace, fingerprint: str, version: str) -> str:
    """The markdown of the results section."""
    n = results["pop"][0]["n_instances"]
    chance = results["pop"][0]["chance"]
    lines = [
        f"Measured by `python benchmarks/baseline_results.py --dataset DIR --out results --seeds {args.seeds} --docs` "
        f"on the sample, dataset version {version} (fingerprint `{fingerprint[:16]}…`), next-track test split, "
        f"{n} instances, on a 2-core CPU. This block is written by the script; do not edit it by hand. "
        f"Memory-based models and probes: one deterministic run, value [95% bootstrap interval]. Neural "
        f"models: mean ± std over {args.seeds} seeds [interval of seed 0]. Every model leaves the session "
        "prefix out of its ranking (the build's rule: a target is never a prefix track); the last column "
        "is the same trained models with the prefix kept rankable (`mmbench baseline predict --keep-prefix`), "
        "what every baseline did before dataset version 2.0.0.",
        "",
        "| model | NDCG@10 | Recall@10 | MRR@10 | NDCG@10, prefix kept |",
        "|---|---|---|---|---|",
        f"| chance (random ranking of {results['pop'][0]['n_catalog']:,} tracks) | "
        + " | ".join(f"{chance[m]:.4f}" for m in METRICS)
        + " | |",
    ]
    for model, reports in results.items():
        before = cell(kept[model], "ndcg@10", interval=False) if model in kept else ""
        lines.append(
            f"| {label(model)} | " + " | ".join(cell(reports, m) for m in METRICS) + f" | {before} |"
        )
    lines += ["", "Per segment (NDCG@10 / Recall@100; segments are the instances' label columns):", ""]
    first = results["pop"][0]["segments"]
    header = " | ".join(f"{name} (n={first[c][g]['n']})" for c, g, name in SEGMENTS)
    lines += [f"| model | {header} |", "|---|" + "---|" * len(SEGMENTS)]
    for model, reports in results.items():
        cells = [
            f"{cell(reports, 'ndcg@10', (c, g), False)} / {cell(reports, 'recall@100', (c, g), False)}"
            for c, g, _ in SEGMENTS
        ]
        lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Paired comparisons (`mmbench compare A B --k 10 [--segment COLUMN=VALUE]`; a neural model is the "
        f"folder of its {args.seeds} seeds' runs, so an instance's metric is its mean over the seeds; NDCG@10 "
        "difference B − A with its 95% paired bootstrap interval and the randomization test's p-value, "
        "Holm-corrected over the distinct statistics of NDCG@10, Recall@10 and MRR@10; * = significant at 0.05):",
        "",
        "| B vs A | segment | n | NDCG@10 difference | p (Holm) |",
        "|---|---|---:|---|---:|",
    ]
    pairs = [("pop", b, None) for b in ("user-repeat", "sknn", *PROBES, *NEURAL)]
    pairs += [
        ("sasrec", "sasrec-mm", s)
        for s in (None, "target_cold=true", "target_cold_new=true", "target_popularity=tail")
    ]
    pairs += [("unseen-first", "sasrec-mm", s) for s in ("target_cold=true", "target_cold_new=true")]
    pairs += [("history-lookup", best, "target_heard_before=true") for best in ("sasrec", "sasrec-mm")]
    for a, b, segment in pairs:
        row = compare(a, b, None, segment, args)
        lines.append(f"| `{b}` vs `{a}` | {segment or 'all'} | {row['n']} | {comparison_cells(row)} |")
    lines += [
        "",
        "`sasrec-mm` against `sasrec`, seed by seed (NDCG@10 difference [interval] | p Holm), to show how "
        "little one seed's test says on the small segments:",
        "",
        "| seed | all | cold | cold and new to the user |",
        "|---:|---|---|---|",
    ]
    for seed in range(args.seeds):
        cells = [
            comparison_cells(compare("sasrec", "sasrec-mm", seed, s, args)).replace(" | ", ", p ")
            for s in (None, "target_cold=true", "target_cold_new=true")
        ]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` of ``path``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    docs = path.read_text(encoding="utf-8")
    if start not in docs or end not in docs:
        raise SystemExit(f"{path}: no {start} ... {end} block to write")
    block = f"{start}\n{text}{end}"
    path.write_text(re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, docs, flags=re.S))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--docs", action="store_true", help="Write the section into docs/baselines.md.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from mmbench.fingerprint import dataset_fingerprint
    from mmbench.schema import DATASET_VERSION

    fingerprint = dataset_fingerprint(args.dataset)
    stamp = args.out / "dataset_fingerprint.txt"  # reports and comparisons are reused: of this build only
    if stamp.exists() and stamp.read_text().strip() != fingerprint:
        raise SystemExit(
            f"{args.out} holds results of another build ({stamp.read_text().strip()}); use a new --out"
        )
    stamp.write_text(fingerprint + "\n")
    results = {m: [run(m, None, args.dataset, args.out)] for m in (*MEMORY, *PROBES)}
    kept = {
        m: [run(m, None, args.dataset, args.out, keep_prefix=True)] for m in ("pop", "user-repeat", "sknn")
    }
    for model in NEURAL:
        results[model] = [run(model, s, args.dataset, args.out) for s in range(args.seeds)]
        kept[model] = [run(model, s, args.dataset, args.out, keep_prefix=True) for s in range(args.seeds)]
    text = section(results, kept, args, fingerprint, DATASET_VERSION)
    print(text)
    if args.docs:
        write_block(DOCS, "baseline-results", text)
        print(f"written to {DOCS}")


if __name__ == "__main__":
    main()
