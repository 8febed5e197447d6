"""The zero-shot table of docs/baselines.md: each scorer with the packaged SmolLM2-135M on the
sample's test split, next to its retriever and chance, with paired comparisons, its speed on this
machine, and its position bias.

Rows (nothing is trained, so nothing is chosen: the settings are the config's defaults):

- next-track: ``likelihood`` and ``verbalizer`` rerank the top 20 of a trained sasrec (seed 0)
  on every test instance; ``listwise`` on a fixed random subset of ``--listwise`` instances (the
  others keep sasrec's ranking, so its comparison with sasrec is over the subset's changes);
- paper-sampled: ``likelihood`` and ``verbalizer`` (groups of 20) rank each instance's 200
  candidates, on a fixed random subset of ``--paper-sampled`` instances (the others keep the
  popularity order of their candidates), compared with pop.

Speed: each row's wall time (model loading included; a busy machine inflates it), and apart,
candidates scored per second with the model loaded: the median of ``--repeats`` passes over the
shortlists of ``--speed`` instances.
Position bias: on ``--bias`` instances, each scorer scores sasrec's top 20 in the retriever's
order and reversed; Kendall's tau between the two score vectors (1: the order does not matter),
for the verbalizer without and with a bootstrap over 3 shuffled orders.

Run: ``python benchmarks/zeroshot_results.py --dataset DIR --out DIR2``; finished steps are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from baseline_results import (  # the sibling script (benchmarks/ is on the path when run)
    METRICS,
    cell,
    compare_paths,
    sh,
)

ROWS = {
    "likelihood": ("next-track", ["scorer=likelihood"]),
    "verbalizer": ("next-track", ["scorer=verbalizer"]),
    "listwise": ("next-track", ["scorer=listwise"]),
    "likelihood-ps": ("paper-sampled", ["scorer=likelihood"]),
    "verbalizer-ps": ("paper-sampled", ["scorer=verbalizer"]),
}


def reference(model: str, task: str, args: argparse.Namespace, extra: list[str]) -> tuple[Path, Path, dict]:
    """A trained reference model's folder, predictions and report."""
    folder = args.out / "models" / model
    path = args.out / f"{model}-{task}.jsonl"
    report = path.with_suffix(".report.json")
    if not (folder / "config.json").exists():
        sh("baseline", "train", model, "--dataset", args.dataset, "--out", str(folder), "--quiet", *extra)
    if not report.exists():
        sh("baseline", "predict", str(folder), "--task", task, "--out", str(path), "--quiet")
        sh("evaluate", str(path), "--dataset", args.dataset, "--task", task, "--json", str(report))
    return folder, path, json.loads(report.read_text())


def zeroshot(row: str, retriever: Path, args: argparse.Namespace) -> tuple[Path, dict, dict]:
    """One scorer's predictions, report and timing."""
    task, settings = ROWS[row]
    subset = {
        "listwise": args.listwise,
        "likelihood-ps": args.paper_sampled,
        "verbalizer-ps": args.paper_sampled,
    }
    settings = [*settings, f"retriever={retriever}", f"instances={subset.get(row, 0)}"]
    folder, path = args.out / "models" / f"zs-{row}", args.out / f"zs-{row}.jsonl"
    report, timing = path.with_suffix(".report.json"), path.with_suffix(".timing.json")
    if not report.exists():
        sh("baseline", "train", "zeroshot", "--dataset", args.dataset, "--out", str(folder), "--quiet",
           *[x for s in settings for x in ("--set", s)])  # fmt: skip
        start = time.perf_counter()
        sh("baseline", "predict", str(folder), "--task", task, "--out", str(path), "--quiet")
        seconds = time.perf_counter() - start
        sh("evaluate", str(path), "--dataset", args.dataset, "--task", task, "--json", str(report))
        n = subset.get(row, 0) or json.loads(report.read_text())["n_instances"]
        timing.write_text(json.dumps({"seconds": seconds, "instances": n}) + "\n")
    return path, json.loads(report.read_text()), json.loads(timing.read_text())


def shortlists(
    retriever_predictions: Path, n: int, args: argparse.Namespace
) -> tuple[Any, list[tuple[str, list[str]]], dict]:
    """The packaged model loaded, the (prompt, sasrec's top 20 as lines) of the first ``n`` test
    instances, and the config's defaults."""
    from mmbench.baselines import zeroshot as zs
    from mmbench.baselines.data import Benchmark, instance_inputs
    from mmbench.baselines.runner import model_config, predict

    data = Benchmark(args.dataset)
    texts = zs.TrackTexts(data, mgphot=False)
    config = model_config("zeroshot").replace(retriever=str(retriever_predictions))
    rows = instance_inputs(data, "next-track", "test")[:n]
    base = zs.retriever_rankings(
        config, data, "next-track", "test", [r["instance_id"] for r in rows], None, predict
    )
    cases = [
        (zs.history_prompt(r, texts, config), [texts.line(t) for t in base[r["instance_id"]][:20]])
        for r in rows
    ]
    return zs.LocalModel("", "auto"), cases, config


VARIANTS = {
    "likelihood": {"scorer": "likelihood"},
    "verbalizer": {"scorer": "verbalizer", "bootstrap": 1},
    "verbalizer, bootstrap 3": {"scorer": "verbalizer", "bootstrap": 3},
    "listwise": {"scorer": "listwise"},
}


def position_bias(retriever_predictions: Path, args: argparse.Namespace) -> list[str]:
    """Kendall's tau of each scorer between the shortlist in order and reversed."""
    from mmbench.baselines import zeroshot as zs

    path = args.out / "position-bias.json"
    if not path.exists():
        model, cases, config = shortlists(retriever_predictions, args.bias, args)
        result = {
            name: [zs.position_bias(model, prompt, lines, config.replace(**settings)) for prompt, lines in cases]
            for name, settings in VARIANTS.items()
        }  # fmt: skip
        path.write_text(json.dumps(result) + "\n")
    result = json.loads(path.read_text())
    return [
        f"| {name} | {statistics.mean(t):.3f} | {statistics.median(t):.3f} | {len(t)} |"
        for name, t in result.items()
    ]


def throughput(retriever_predictions: Path, args: argparse.Namespace) -> list[str]:
    """Candidates scored per second by each scorer, the model loaded: ``--repeats`` timed passes
    over the shortlists of the first ``--speed`` instances, their median and range."""
    import numpy as np

    from mmbench.baselines import zeroshot as zs

    path = args.out / "throughput.json"
    if not path.exists():
        model, cases, config = shortlists(retriever_predictions, args.speed, args)
        result = {}
        for name, settings in VARIANTS.items():
            scorer, rates = zs.SCORER_FUNCTIONS[settings["scorer"]], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for prompt, lines in cases:
                    scorer(model, prompt, lines, config.replace(**settings), np.random.default_rng(0))
                rates.append(sum(len(lines) for _, lines in cases) / (time.perf_counter() - start))
            result[name] = rates
        path.write_text(json.dumps({"instances": len(cases), "rates": result}) + "\n")
    saved = json.loads(path.read_text())
    return [
        f"| {name} | {statistics.median(r):.1f} | {min(r):.1f}-{max(r):.1f} | {len(r)} × {saved['instances']} |"
        for name, r in saved["rates"].items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--listwise", type=int, default=100)
    parser.add_argument("--paper-sampled", type=int, default=100)
    parser.add_argument("--bias", type=int, default=30)
    parser.add_argument("--speed", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sasrec, sasrec_path, sasrec_report = reference("sasrec", "next-track", args, ["--set", "seed=0"])
    _, pop_ps_path, pop_ps_report = reference("pop", "paper-sampled", args, [])
    reports = {
        "next-track": [("sasrec (retriever)", sasrec_report, None)],
        "paper-sampled": [("pop", pop_ps_report, None)],
    }
    lines = []
    for row in args.only:
        task = ROWS[row][0]
        path, report, timing = zeroshot(row, sasrec, args)
        reports[task].append((f"zeroshot {row}", report, timing))
        against = sasrec_path if task == "next-track" else pop_ps_path
        name = f"compare-{'sasrec' if task == 'next-track' else 'pop'}-{row}.json"
        lines.append(
            f"{row} - {'sasrec' if task == 'next-track' else 'pop'} ({task}): {compare_paths(against, path, args.out / name, args.dataset, task=task)}"
        )
    for task, rows in reports.items():
        chance = rows[0][1]["chance"]
        print(f"\n{task}\n\n| model | NDCG@10 | Recall@10 | MRR@10 | instances reranked | wall time |")
        print("|---|---|---|---|---|---|")
        print("| chance | " + " | ".join(f"{chance[m]:.4f}" for m in METRICS) + " | | |")
        for name, report, timing in rows:
            n, wall = (timing["instances"], f"{timing['seconds']:.0f} s") if timing else ("", "")
            print(f"| `{name}` | " + " | ".join(cell([report], m) for m in METRICS) + f" | {n} | {wall} |")
    print()
    for line in lines:
        print(line)
    print("\n| scorer | Kendall tau, mean | median | instances |\n|---|---|---|---|")
    for line in position_bias(sasrec_path, args):
        print(line)
    print("\n| scorer | candidates/s, median | range | passes × instances |")
    print("|---|---|---|---|")
    for line in throughput(sasrec_path, args):
        print(line)


if __name__ == "__main__":
    main()
