"""What the catalogue gives away: the protocol's catalogue figures and the `unseen-first` probe
per segment, on any build (the sample, or the full-size synthetic build of build_full.py).

    python benchmarks/protocol_probes.py --dataset DIR [--out probes] [--split test] [--docs LABEL]

The catalogue is every track that passed the recipe's thresholds over the whole period, so a
catalogue track with no play before an instance's session is certain to be played later.
Prints, from the build alone:

* the catalogue tracks with no training or validation play (each is played in the test period)
  and how many of them are test next-track targets;
* from ``build_report.json``: the tracks (and test targets) in the catalogue only thanks to plays
  after the test cutoff;
* `unseen-first` and `pop` on next-track (rankings written through the baselines' own ``fit``,
  ``score`` and ``rank``, with each instance's session start and prefix read columnar, so it
  runs at 383,670 tracks and tens of thousands of instances), NDCG@10 and Recall@100 overall
  and per segment, by the official evaluator.

With ``--docs LABEL`` (test split), the build's row of the catalogue table in docs/protocol.md
is written (or replaced) under that label, with the dataset version and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from mmbench.baselines import pop as pop_module
from mmbench.baselines import unseen_first
from mmbench.baselines.data import Benchmark, popularity_order
from mmbench.baselines.runner import rank
from mmbench.evaluator import Evaluator
from mmbench.progress import progress_bar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_results import write_block  # noqa: E402  (the sibling script)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
HEADER = (
    "| build | catalogue | tracks with no play before the test period | test next-track targets among them "
    "| tracks kept only thanks to test-period plays | test targets among those "
    "| `unseen-first` Recall@100, cold / cold and new |\n|---|---:|---:|---:|---:|---:|---|\n"
)

SEGMENTS = (
    ("target_heard_before", "true"),
    ("target_heard_before", "false"),
    ("target_cold", "true"),
    ("target_cold_new", "true"),
    ("target_popularity", "tail"),
)


def catalogue_figures(data: Benchmark, split: str) -> dict:
    """Catalogue tracks with no play before the split's cutoff (as `unseen-first` reads them:
    by play time) and the targets among them."""
    cut = data.build_report["stages"]["split"][f"{split}_cutoff"]
    plays = pl.concat(
        data.frame("sessions", s).select("track_ids", "timestamps") for s in ("train", "validation", "test")
    ).explode("track_ids", "timestamps")
    played = set(plays.filter(pl.col("timestamps").dt.epoch("s") < cut)["track_ids"].unique().to_list())
    unplayed = set(data.track_ids) - played
    targets = data.instances("next-track", split)["target_track_id"]
    return {
        "catalogue": len(data.track_ids),
        "no_play_before_the_split": len(unplayed),
        "targets": len(targets),
        "targets_among_them": int(targets.is_in(list(unplayed)).sum()),
    }


def probe_rankings(data: Benchmark, module, split: str) -> dict[str, list[str]]:
    """Next-track rankings of a memory baseline that reads only the session start and prefix."""
    instances = data.instances("next-track", split).join(
        data.sessions("train", "validation", "test").select(
            "session_id", pl.col("start_time").alias("start"), pl.col("track_ids").alias("tracks")
        ),
        on="session_id",
    )
    rows = instances.select(
        "instance_id", "start", pl.col("tracks").list.head(pl.col("position")).alias("prefix")
    ).to_dicts()
    state = module.fit(data, {})
    order = popularity_order(data)
    pop_rank = {t: i for i, t in enumerate(order)}
    out = {}
    for row in progress_bar(rows, desc=module.__name__.rsplit(".", 1)[-1]):
        inputs = {**row, "history": [], "candidates": None}
        excluded = frozenset(row["prefix"]) if data.excludes_prefix else frozenset()
        out[row["instance_id"]] = rank(
            module.score(inputs, state, {}), pop_rank, order, None, excluded=excluded
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, default=Path("probes"))
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--docs", metavar="LABEL", help="Write this build's row of docs/protocol.md's table.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Benchmark(args.dataset)
    report = json.loads((Path(data.source) / "build_report.json").read_text())
    figures = catalogue_figures(data, args.split)
    later = report["later_plays_in_selection"]
    targets_later = report["stages"]["instances"]["targets_kept_only_with_later_plays"][args.split][
        "next-track"
    ]
    print(f"dataset version {report['dataset_version']}, fingerprint {report['fingerprint']}")
    print(
        f"catalogue {figures['catalogue']:,} tracks; {figures['no_play_before_the_split']:,} have no play before the "
        f"{args.split} period (each is played in it); {figures['targets_among_them']:,} of the {figures['targets']:,} "
        f"{args.split} next-track targets are among them ({figures['targets_among_them'] / figures['targets']:.1%})"
    )
    print(
        f"tracks in the catalogue only thanks to plays after the test cutoff: {later['tracks_kept_only_with_later_plays']:,} "
        f"of {later['tracks_kept']:,}; {args.split} next-track targets among them: {targets_later['targets']:,} of "
        f"{targets_later['instances']:,} ({targets_later['targets'] / targets_later['instances']:.1%})"
    )
    evaluator = Evaluator("next-track", args.split, args.dataset)
    print()
    header = " | ".join(f"{c}={g}" for c, g in SEGMENTS)
    print(f"| rule | all | {header} |")
    print("|---|---|" + "---|" * len(SEGMENTS))
    ns, unseen = None, {}
    for name, module in (("pop", pop_module), ("unseen-first", unseen_first)):
        path = args.out / f"{name}-{args.split}.jsonl"
        if not path.exists():
            rankings = probe_rankings(data, module, args.split)
            path.write_text(
                "".join(json.dumps({"instance_id": i, "predictions": r}) + "\n" for i, r in rankings.items())
            )
        result = evaluator.eval_file(path, n_bootstrap=0)

        def cell(entry: dict) -> str:
            return (
                f"{entry['ndcg@10']['value']:.4f} / {entry['recall@100']['value']:.4f}"
                if "ndcg@10" in entry
                else "-"
            )

        ns = [result.segments[c][g]["n"] for c, g in SEGMENTS]
        cells = [cell(result.segments[c][g]) for c, g in SEGMENTS]
        print(f"| `{name}` | {cell(result.metrics)} | " + " | ".join(cells) + " |")
        unseen = {c: result.segments[c]["true"] for c in ("target_cold", "target_cold_new")}
    print(f"(NDCG@10 / Recall@100; n per segment: {', '.join(f'{n:,}' for n in ns or [])})")
    if args.docs:
        n = figures["targets"]
        row = (
            f"| {args.docs}, dataset {report['dataset_version']} | {figures['catalogue']:,} | "
            f"{figures['no_play_before_the_split']:,} | {figures['targets_among_them']:,} of {n:,} "
            f"({figures['targets_among_them'] / n:.1%}) | {later['tracks_kept_only_with_later_plays']:,} | "
            f"{targets_later['targets']:,} of {n:,} ({targets_later['targets'] / n:.1%}) | "
            + " / ".join(f"{g['recall@100']['value']:.4f} (n={g['n']:,})" for g in unseen.values())
            + " |"
        )
        write_docs_row(args.docs, row)


def write_docs_row(label: str, row: str) -> None:
    """Replace (or add) the row of ``label`` in docs/protocol.md's catalogue table."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- catalogue:start -->\n", 1)[1].split("<!-- catalogue:end -->", 1)[0]
    rows = [r for r in block.splitlines()[2:] if r.startswith("| ") and not r.startswith(f"| {label},")]
    rows.append(row)
    command = "Rows written by `python benchmarks/protocol_probes.py --dataset DIR --docs LABEL`."
    write_block(DOCS, "catalogue", HEADER + "\n".join(sorted(rows)) + "\n\n" + command + "\n")


if __name__ == "__main__":
    main()
