"""The measured cost of every step of `mmbench reproduce`, on the sample beside the full size.

    python benchmarks/reproduce_costs.py --sample repro-sample --full repro-full [--docs]

Reads the ``costs.json`` that each run of ``mmbench reproduce`` keeps (wall time and peak RSS of
each step's process) and prints one table: each step's cost on the sample and at full size, the
totals, and the share of the full run's time that each kind of step takes. ``--docs`` writes it
into docs/baselines.md between ``<!-- reproduce-costs:start -->`` and ``<!-- reproduce-costs:end -->``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from baseline_results import DOCS, write_block  # the sibling script

from mmbench.reproduce import duration


def costs(run: Path) -> dict[str, dict]:
    path = run / "costs.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; expected the folder of a finished `mmbench reproduce`")
    return json.loads(path.read_text(encoding="utf-8"))


def facts(run: Path) -> str:
    report = json.loads((run / "dataset" / "build_report.json").read_text(encoding="utf-8"))
    stats, test = report["statistics"], report["statistics"]["instances"]["next-track"]["test"]
    return f"dataset {report['dataset_version']}, fingerprint {report['fingerprint'][:12]}: {stats['plays']:,} plays, {stats['tracks']:,} tracks, {test:,} next-track test instances"


def cell(run: Path, name: str, cost: dict | None) -> str:
    """Wall time and peak memory; for a neural training, the epochs it ran and the best one."""
    if not cost:
        return "not run yet | "
    note = ""
    config = run / "models" / name.removeprefix("train ") / "config.json"
    if name.startswith("train ") and config.is_file():
        training = json.loads(config.read_text(encoding="utf-8")).get("training")
        if training:
            note = f" ({len(training['epochs'])} epochs, best {training['best_epoch']})"
    return f"{duration(cost['seconds'])}{note} | {cost['peak_gib']:.2f}"


def text_encoding(run: Path) -> str:
    """How long the build spent embedding track names: the first to the last chunk written to
    the text config's embedding cache (one chunk's time added for the first)."""
    chunks = sorted(
        p.stat().st_mtime for p in (run / "dataset" / ".build" / "embedding-cache").glob("text-*/*.npz")
    )
    if len(chunks) < 2:
        return ""
    span = (chunks[-1] - chunks[0]) * len(chunks) / (len(chunks) - 1)
    return f" Of the full-size build, embedding the track names took about {duration(span)} ({len(chunks)} chunks of the embedding cache)."


def table(sample: Path, full: Path) -> str:
    small, large = costs(sample), costs(full)
    lines = [
        f"Sample: {facts(sample)}. Full size: {facts(full)}.",
        "",
        "| step | sample: wall | sample: peak GiB | full size: wall | full size: peak GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    names = [*small, *(name for name in large if name not in small)]
    lines += [
        f"| {name} | {cell(sample, name, small.get(name))} | {cell(full, name, large.get(name))} |"
        for name in names
    ]
    total_small = sum(c["seconds"] for c in small.values())
    total_large = sum(c["seconds"] for c in large.values())
    lines.append(
        f"| **total** | {duration(total_small)} | {max(c['peak_gib'] for c in small.values()):.2f} | "
        f"{duration(total_large)} | {max(c['peak_gib'] for c in large.values()):.2f} |"
    )
    by_kind: dict[str, float] = defaultdict(float)
    for cost in large.values():
        by_kind[cost["kind"]] += cost["seconds"]
    shares = ", ".join(
        f"{kind} {seconds / total_large:.0%}"
        for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1])
    )
    missing = [name for name in small if name not in large]
    largest = max(large, key=lambda name: large[name]["seconds"])
    lines += [
        "",
        f"At full size the largest step is {largest} ({duration(large[largest]['seconds'])}); "
        f"the time by kind of step: {shares}." + text_encoding(full),
    ]
    if missing:
        lines += [
            "",
            f"Not run yet at full size: {len(missing)} of the {len(small)} steps (the totals leave them out).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--full", type=Path, required=True)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    text = table(args.sample, args.full)
    print(text)
    if args.docs:
        write_block(DOCS, "reproduce-costs", text + "\n")


if __name__ == "__main__":
    main()
