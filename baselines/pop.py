"""Pop: rank tracks by their number of training plays (ties by track id), the same for everyone.

    python -m mmbench.baselines.pop DATASET OUT.jsonl [--task next-track] [--split test]

For ``paper-sampled`` it ranks each instance's candidates the same way. It reads the dataset
only through ``mmbench.load``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import mmbench
from mmbench.schema import MAX_PREDICTIONS


def popularity_order(source: str | os.PathLike | None = None) -> list[str]:
    """All catalogue track ids, most played in training first, ties broken by track id."""
    tracks = mmbench.load("tracks", "catalog", source=source).to_polars()
    return tracks.sort(["n_plays_train", "track_id"], descending=[True, False])["track_id"].to_list()


def write_predictions(
    source: str | os.PathLike | None,
    out: Path,
    task: str = "next-track",
    split: str = "test",
    k: int = MAX_PREDICTIONS,
) -> int:
    """Write the popularity ranking of every instance of ``task``/``split`` to ``out``; return the count."""
    order = popularity_order(source)
    rank = {t: i for i, t in enumerate(order)}
    instances = mmbench.load("instances", split, source=source).filter(
        lambda task_name: task_name == task, input_columns="task"
    )
    top = order[:k]
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in instances:
            ranking = sorted(row["candidates"], key=rank.__getitem__)[:k] if task == "paper-sampled" else top
            f.write(json.dumps({"instance_id": row["instance_id"], "predictions": ranking}) + "\n")
    tmp.replace(out)
    return instances.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset")
    parser.add_argument("out", type=Path)
    parser.add_argument("--task", default="next-track", choices=["next-track", "paper-sampled"])
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    args = parser.parse_args()
    n = write_predictions(args.dataset, args.out, args.task, args.split)
    print(f"wrote {n:,} {args.task} predictions to {args.out}")


if __name__ == "__main__":
    main()
