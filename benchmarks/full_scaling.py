"""How the costs that grow with the data grow: a quarter, half and the whole full-size file.

    python benchmarks/full_scaling.py [--fractions 0.25 0.5 1] [--work /tmp/mmbench-scaling]
        [--dataset FRACTION=DIR ...] [--docs]

For each fraction f it writes (once, cached in --work) the synthetic plays file of
``benchmarks/build_full.py`` with f x 19,150,868 lines and builds it (or takes an existing build
of that file: ``--dataset 1=repro/dataset``; builds made here have no text config, which none of
the components reads), then measures, each in a fresh process:

* **validation pass**: one call of the training loop's validation scorer (every validation
  next-track instance ranked over the whole catalogue, then scored by the evaluator) on a SASRec
  of the real data's shape (``max_len=200``, ``dim=128``); its work is instances x tracks;
* **sknn search**: ``mmbench baseline predict`` of an sknn with ``sample_size=1000`` on the
  next-track test instances (its index over every training session, then each instance's
  neighbour search); its work is the instances;
* **evaluator**: ``mmbench evaluate`` of those predictions on the real test split (1,000
  bootstrap resamples and the segments); its work is the instances.

Prints, per component and fraction, the wall time, peak RSS and work, and the growth exponent b
of time ~ work^b from the quarter to the whole file (1: linear in its work). ``--docs`` writes the
table into docs/baselines.md between ``<!-- full-scaling:start -->`` and ``<!-- full-scaling:end -->``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from baseline_results import DOCS, write_block  # the sibling scripts
from build_full import FULL_LINES, timed, write_synthetic

from mmbench.reproduce import mmbench_command

VALIDATION = r"""
import json, sys, time
import mmbench.baselines.sasrec as sasrec
from mmbench.baselines import training
from mmbench.baselines.data import Benchmark
from mmbench.baselines.runner import model_config

data = Benchmark(sys.argv[1])
config = model_config("sasrec", ["max_len=200", "dim=128", "device=cpu"])
training.seed_everything(0)
model = sasrec.build(len(data.track_ids), config, data)
start = time.perf_counter()
score = training.validation_scorer(data, config.max_len)
setup = time.perf_counter() - start
start = time.perf_counter()
score(model)
instances = data.instances("next-track", "validation").height
print("result " + json.dumps({"setup_s": setup, "pass_s": time.perf_counter() - start,
      "instances": instances, "tracks": len(data.track_ids)}), file=sys.stderr)
"""


def built(fraction: float, work: Path, given: dict[float, Path]) -> Path:
    """The build of the file with ``fraction`` of the full lines (made once)."""
    if fraction in given:
        return given[fraction]
    lines = round(FULL_LINES * fraction)
    raw = work / f"plays-{lines}.tsv"
    if not raw.exists():
        write_synthetic(raw, lines)
    dataset = work / f"build-{lines}"
    if not (dataset / "build_report.json").exists():
        # No text config: none of the components reads content, and its encoding is most of a CPU build.
        command = ["build", "--raw", str(raw), "--out", str(dataset), "--text-encoder", "", "--quiet"]
        wall, peak, _ = timed(mmbench_command(*command))
        print(f"built {dataset} in {wall:.0f} s (peak {peak:.1f} GB)")
    return dataset


def measure(fraction: float, dataset: Path, work: Path) -> dict[str, dict[str, float]]:
    """The three components' wall time, peak GB and work on one build."""
    stats = json.loads((dataset / "build_report.json").read_text(encoding="utf-8"))["statistics"]
    test = stats["instances"]["next-track"]["test"]
    _, peak, log = timed([sys.executable, "-c", VALIDATION, str(dataset)])
    inner = json.loads(re.findall(r"^result (.*)$", log, flags=re.M)[-1])
    rows = {
        "validation pass": {
            "seconds": inner["pass_s"],
            "peak_gb": peak,
            "work": inner["instances"] * inner["tracks"],
            "unit": f"{inner['instances']:,} instances x {inner['tracks']:,} tracks",
        }
    }
    model = work / f"sknn-{fraction}"
    timed([*mmbench_command(), "baseline", "train", "sknn", "--dataset", str(dataset), "--out", str(model),
           "--set", "sample_size=1000", "--quiet"])  # fmt: skip
    predictions = work / f"sknn-{fraction}.jsonl"
    wall, peak, _ = timed([*mmbench_command(), "baseline", "predict", str(model), "--task", "next-track",
                           "--out", str(predictions), "--quiet"])  # fmt: skip
    rows["sknn search"] = {
        "seconds": wall,
        "peak_gb": peak,
        "work": test,
        "unit": f"{test:,} instances, {stats['sessions']:,} sessions in the build",
    }
    wall, peak, _ = timed([*mmbench_command(), "evaluate", str(predictions), "--dataset", str(dataset),
                           "--task", "next-track", "--json", str(work / f"sknn-{fraction}.report.json")])  # fmt: skip
    rows["evaluator"] = {"seconds": wall, "peak_gb": peak, "work": test, "unit": f"{test:,} instances"}
    for row in rows.values():
        row["plays"] = stats["plays"]
    return rows


def table(results: dict[float, dict[str, dict[str, float]]]) -> str:
    fractions = sorted(results)
    lines = [
        "| component | file | plays | work | wall time | peak RSS | s per 1e6 work units |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    growth = []
    for component in results[fractions[0]]:
        for f in fractions:
            row = results[f][component]
            lines.append(
                f"| {component} | {f:g} | {row['plays']:,} | {row['unit']} | {row['seconds']:.1f} s | "
                f"{row['peak_gb']:.2f} GB | {row['seconds'] / row['work'] * 1e6:.3g} |"
            )
        low, high = results[fractions[0]][component], results[fractions[-1]][component]
        exponent = math.log(high["seconds"] / low["seconds"]) / math.log(high["work"] / low["work"])
        growth.append(
            f"{component}: work x{high['work'] / low['work']:.2f}, time x{high['seconds'] / low['seconds']:.2f} "
            f"(time ~ work^{exponent:.2f})"
        )
    return "\n".join(lines) + "\n\nFrom the smallest to the largest file: " + "; ".join(growth) + "."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mmbench-scaling"))
    parser.add_argument("--dataset", action="append", default=[], metavar="FRACTION=DIR")
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    given = {float(f): Path(d) for f, d in (item.split("=", 1) for item in args.dataset)}
    results = {}
    for fraction in args.fractions:
        dataset = built(fraction, args.work, given)
        results[fraction] = measure(fraction, dataset, args.work)
        print(json.dumps({fraction: results[fraction]}))
    text = table(results)
    print(text)
    if args.docs:
        body = (
            f"`python benchmarks/full_scaling.py --fractions {' '.join(f'{f:g}' for f in args.fractions)}` "
            "(each measurement in its own process on this 2-core CPU):\n\n" + text
        )
        write_block(DOCS, "full-scaling", body + "\n")


if __name__ == "__main__":
    main()
