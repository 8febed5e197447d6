"""The measured cost of every step of `mmbench reproduce`, on the sample beside the full size.

    python benchmarks/reproduce_costs.py --sample repro-sample --full repro-full [--docs]
        [--trials MODEL_DIR ... --reference pop=VALIDATION_PREDICTIONS.jsonl]

Reads the ``costs.json`` that each run of ``mmbench reproduce`` keeps (wall time and peak RSS of
each step's process) and prints one table: each step's cost on the sample and at full size, the
totals, and the share of the full run's time that each kind of step takes. ``--docs`` writes it
into docs/baselines.md between ``<!-- reproduce-costs:start -->`` and ``<!-- reproduce-costs:end -->``.

``--trials`` lists trained neural model folders (the full-size runs' and the trials that chose
their CPU loss) with their sampled-softmax settings and validation NDCG@10 after each epoch, beside
the ``--reference`` rankings of the same validation instances scored by the official evaluator
(``mmbench baseline predict pop --split validation``); ``--docs`` writes that table between
``<!-- cpu-loss-trials:start -->`` and ``<!-- cpu-loss-trials:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def trials(folders: list[Path], reference: tuple[str, Path] | None) -> str:
    """Each trained model's loss settings and validation NDCG@10 by epoch, with a reference."""
    from mmbench.evaluator import Evaluator

    command = " ".join(["python benchmarks/reproduce_costs.py", *sys.argv[1:]]).replace(" --docs", "")
    lines = [
        f"`{command}`:",
        "",
        "| model folder | model | loss | negatives | drawn by popularity | batch | validation NDCG@10 by epoch | best |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    dataset = None
    for folder in folders:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        settings, epochs = config["config"], config["training"]["epochs"]
        dataset = dataset or config["dataset"]
        scores = [e["validation_ndcg@10"] for e in epochs]
        lines.append(
            f"| `{folder.parent.name}/{folder.name}` | {config['model']} | {settings['loss']} | {settings['negatives']:,} | "
            f"{settings.get('popular_negatives', 0.0):g} | {settings['batch_size']} | "
            f"{', '.join(f'{v:.4f}' for v in scores)} | {max(scores):.4f} |"
        )
    if reference:
        name, path = reference
        score = Evaluator("next-track", "validation", dataset).eval_file(path, n_bootstrap=0, segments=False)
        lines += [
            "",
            f"`{name}` on the same validation instances: NDCG@10 {score.metrics['ndcg@10']['value']:.4f}.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--full", type=Path, required=True)
    parser.add_argument("--trials", type=Path, nargs="*", default=[])
    parser.add_argument("--reference", help="NAME=PREDICTIONS: validation rankings to show beside the trials")
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    text = table(args.sample, args.full)
    print(text)
    if args.docs:
        write_block(DOCS, "reproduce-costs", text + "\n")
    if args.trials:
        name, _, path = (args.reference or "").partition("=")
        text = trials(args.trials, (name, Path(path)) if path else None)
        print(text)
        if args.docs:
            write_block(DOCS, "cpu-loss-trials", text + "\n")


if __name__ == "__main__":
    main()
