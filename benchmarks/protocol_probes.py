"""What the catalogue gives away: the protocol's catalogue figures and the `unseen-first` probe
per segment, on any build (the sample, or the full-size synthetic build of build_full.py).

    python benchmarks/protocol_probes.py --dataset DIR [--out probes] [--split test]

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
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl

from mmbench.baselines import pop as pop_module
from mmbench.baselines import unseen_first
from mmbench.baselines.data import Benchmark
from mmbench.baselines.runner import popularity_order, rank
from mmbench.evaluator import Evaluator
from mmbench.progress import progress_bar

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
    ns = None
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
    print(f"(NDCG@10 / Recall@100; n per segment: {', '.join(f'{n:,}' for n in ns or [])})")


if __name__ == "__main__":
    main()
