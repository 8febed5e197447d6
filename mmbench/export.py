"""``mmbench export``: a built folder in the file formats of other toolkits.

Every format keeps the benchmark's global temporal split as separate files (train, validation,
test by session start); none re-splits the data leave-one-out, which would put later plays in
training. Scores computed by another toolkit's own evaluator are not benchmark results: rank the
benchmark's instances and score them with ``mmbench evaluate``.

- ``recbole``: RecBole atomic files (https://recbole.io/docs/user_guide/data/atomic_files.html)
  in the sequence form that RecBole's sequential models read with ``benchmark_filename``: one row
  per prediction, ``instance_id:token``, ``item_id_list:token_seq`` (the input: every earlier
  play of the user, then the session prefix, the last :data:`RECBOLE_MAX_LENGTH` of them) and
  ``item_id:token`` (the target). ``<name>.test.inter`` and ``.valid.inter`` hold exactly the
  benchmark's ``next-track`` instances of those splits; ``.train.inter`` every play of a training
  session after its user's first play, with the plays before it as input (RecBole's own
  augmentation, over the user's sessions in time order). ``<name>.item`` is the whole catalogue
  (so cold tracks are in RecBole's item space) with the content vectors as ``float_seq`` fields,
  and ``<name>.yaml`` the settings that read it. RecBole's full-ranking scores on the test file
  are then the ``next-track`` protocol's, except that the benchmark's baselines leave the prefix
  out of their rankings and RecBole does not (docs/evaluation.md).
- ``session-rec``: the tab-separated ``SessionId ItemId Time`` files of session-rec
  (https://github.com/rn5l/session-rec): ``<name>_train_full.txt`` (train and validation),
  ``_train_tr.txt``, ``_train_valid.txt``, ``_test.txt``, with integer ids and the files that
  map them back (``_items.txt``, ``_sessions.txt``).
- ``csv``: plain CSV: ``plays.csv`` (one row per play, with its split), ``instances.csv``,
  ``tracks.csv``, ``users.csv`` and one file per content config; lists are space-separated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from mmbench import layout
from mmbench.errors import MmbenchError
from mmbench.files import replace_tree

MARKER = ".mmbench-export"  # an export folder's mark: only such a folder (or an empty one) is replaced
NAME = "lastfm1k-mm"
RECBOLE_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
RECBOLE_MAX_LENGTH = 50  # the input's length, as RecBole's MAX_ITEM_LIST_LENGTH default
RECBOLE_USER_BATCH = 2_000  # training rows are written this many users at a time (bounded memory)
SESSION_REC_FILES = {"train_full": ("train", "validation"), "train_tr": ("train",), "train_valid": ("validation",), "test": ("test",)}  # fmt: skip


def read_config(folder: Path, config: str, split: str | None = None) -> pl.DataFrame:
    """One config of a built folder (one split, or every split with a ``split`` column)."""
    splits = [split] if split else layout.splits(folder, config)
    frames = []
    for name in splits:
        files = layout.split_files(folder, config, name)
        if not files:
            raise MmbenchError(f"{folder}: no {config}/{name} parquet files; is it a build folder?")
        frame = pl.read_parquet(files)
        frames.append(frame if split else frame.with_columns(pl.lit(name).alias("split")))
    return pl.concat(frames)


def plays(folder: Path, split: str) -> pl.DataFrame:
    """One row per play of a split's sessions, in session order, with its position (0-based)."""
    sessions = read_config(folder, "sessions", split)
    return (
        sessions.with_columns(pl.int_ranges(pl.col("track_ids").list.len()).alias("position"))
        .explode(["track_ids", "timestamps", "listen_seconds", "completion_ratios", "position"])
        .select(
            "session_id",
            "user_id",
            "position",
            pl.col("track_ids").alias("track_id"),
            pl.col("timestamps").dt.epoch("s").alias("timestamp"),
            pl.col("listen_seconds"),
            pl.col("completion_ratios").alias("completion_ratio"),
        )
    )


def _content_configs(folder: Path) -> list[str]:
    return [c for c in layout.configs(folder) if c not in ("sessions", "instances", "tracks", "users")]


def _joined(column: str) -> pl.Expr:
    """A list column as one space-separated string (null stays null)."""
    return pl.col(column).cast(pl.List(pl.String)).list.join(" ")


def _check_text(frame: pl.DataFrame, name: str) -> None:
    """Tab-separated formats cannot hold a tab or a line break inside a value."""
    for column, dtype in frame.schema.items():
        if dtype == pl.String and frame[column].str.contains(r"[\t\n\r]").any():
            raise MmbenchError(f"{name}: column {column} has a tab or line break; this format cannot hold it")


def _write_tsv(frame: pl.DataFrame, path: Path, types: dict[str, str] | None = None) -> None:
    _check_text(frame, path.name)
    if types:
        frame = frame.rename({c: f"{c}:{types[c]}" for c in frame.columns})
    frame.write_csv(path, separator="\t", null_value="")


def user_sequences(folder: Path) -> pl.DataFrame:
    """Every play of every session (all splits) in each user's time order: ``user_id``,
    ``session_id``, ``split``, ``position`` in the session and ``index`` in the user's sequence."""
    return (
        pl.concat(
            [plays(folder, split).with_columns(pl.lit(split).alias("split")) for split in RECBOLE_SPLITS]
        )
        .join(read_config(folder, "sessions").select("session_id", "start_time"), on="session_id", how="left")
        .sort("user_id", "start_time", "session_id", "position")
        .with_columns(pl.int_range(pl.len()).over("user_id").alias("index"))
        .select("user_id", "session_id", "split", "position", "index", "track_id")
    )


def _input_rows(sequence: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Rows ``instance_id``, ``item_id_list`` (space-separated: the user's plays before the
    target's ``index``, the last RECBOLE_MAX_LENGTH) and ``item_id`` for each target row
    (``instance_id``, ``user_id``, ``index``, ``track_id``)."""
    lists = sequence.group_by("user_id").agg(pl.col("track_id").sort_by("index").alias("plays"))
    start = (pl.col("index") - RECBOLE_MAX_LENGTH).clip(lower_bound=0)
    return (
        targets.join(lists, on="user_id", how="left")
        .select(
            "instance_id",
            pl.col("plays").list.slice(start, pl.col("index") - start).list.join(" ").alias("item_id_list"),
            pl.col("track_id").alias("item_id"),
        )
        .sort("instance_id")
    )


def export_recbole(folder: Path, out: Path) -> list[Path]:
    """RecBole atomic files in sequence form; see the module docstring."""
    types = {"instance_id": "token", "item_id_list": "token_seq", "item_id": "token"}
    sequence = user_sequences(folder)
    written = []
    for split, suffix in RECBOLE_SPLITS.items():
        path = out / f"{NAME}.{suffix}.inter"
        written.append(path)
        if split == "train":
            targets = sequence.filter((pl.col("split") == "train") & (pl.col("index") > 0)).select(
                pl.format("{}:{}", "session_id", "position").alias("instance_id"),
                "user_id",
                "index",
                "track_id",
            )
            users = targets["user_id"].unique().sort()
            with path.open("w", encoding="utf-8") as f:
                f.write("\t".join(f"{c}:{t}" for c, t in types.items()) + "\n")
                for i in range(0, len(users), RECBOLE_USER_BATCH):
                    batch = targets.filter(
                        pl.col("user_id").is_in(users[i : i + RECBOLE_USER_BATCH].implode())
                    )
                    rows = _input_rows(
                        sequence.filter(pl.col("user_id").is_in(batch["user_id"].unique().implode())), batch
                    )
                    _check_text(rows, path.name)
                    rows.write_csv(f, separator="\t", include_header=False)
            continue
        instances = read_config(folder, "instances", split).filter(pl.col("task") == "next-track")
        targets = instances.join(
            sequence.select("session_id", "position", "index"), on=["session_id", "position"], how="left"
        ).select("instance_id", "user_id", "index", pl.col("target_track_id").alias("track_id"))
        _write_tsv(_input_rows(sequence, targets), path, types)
    items = read_config(folder, "tracks", "catalog").select(
        pl.col("track_id").alias("item_id"), "artist_name", "track_name", "duration_seconds"
    )
    item_types = {
        "item_id": "token",
        "artist_name": "token",
        "track_name": "token",
        "duration_seconds": "float",
    }
    for config in _content_configs(folder):
        content = read_config(folder, config, "catalog")
        vector = "genes" if "genes" in content.columns else "embedding"
        field = config.replace("-", "_")
        items = items.join(
            content.select(pl.col("track_id").alias("item_id"), _joined(vector).alias(field)),
            on="item_id", how="left", maintain_order="left",
        )  # fmt: skip
        item_types[field] = "float_seq"
    written.append(out / f"{NAME}.item")
    _write_tsv(items, written[-1], item_types)
    written.append(out / f"{NAME}.yaml")
    written[-1].write_text(
        "# RecBole settings that read this export in sequence form with the benchmark's split:\n"
        "# test rows are the next-track test instances. Pass as config_file_list to run_recbole.\n"
        f"dataset: {NAME}\n"
        "benchmark_filename: [train, valid, test]\n"
        "USER_ID_FIELD: instance_id\nITEM_ID_FIELD: item_id\nTIME_FIELD: ~\n"
        f"LIST_SUFFIX: _list\nMAX_ITEM_LIST_LENGTH: {RECBOLE_MAX_LENGTH}\n"
        "load_col:\n  inter: [instance_id, item_id_list, item_id]\n  item: [item_id]\n"
        "eval_args:\n  order: TO\n  mode: full\n"
        "metrics: [Recall, NDCG, MRR]\ntopk: [10]\nvalid_metric: NDCG@10\n",
        encoding="utf-8",
    )
    return written


def export_session_rec(folder: Path, out: Path) -> list[Path]:
    """session-rec's files; see the module docstring. session-rec reads ``ItemId`` as an integer,
    so tracks and sessions get integer codes (a track's position in the catalogue, a session's in
    the sorted session ids, both from 1), with ``_items.txt`` and ``_sessions.txt`` mapping them back."""
    by_split = {split: plays(folder, split) for split in ("train", "validation", "test")}
    tracks = read_config(folder, "tracks", "catalog").select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("ItemId"), "track_id", "artist_name", "track_name"
    )
    sessions = (
        pl.concat([frame.select("session_id").unique() for frame in by_split.values()])
        .sort("session_id")
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("SessionId"))
    )
    written = [out / f"{NAME}_items.txt", out / f"{NAME}_sessions.txt"]
    _write_tsv(tracks, written[0])
    _write_tsv(sessions.select("SessionId", "session_id"), written[1])
    codes = {"ItemId": tracks.select("track_id", "ItemId"), "SessionId": sessions}
    for suffix, splits in SESSION_REC_FILES.items():
        frame = (
            pl.concat([by_split[s] for s in splits])
            .join(codes["SessionId"], on="session_id", how="left", maintain_order="left")
            .join(codes["ItemId"], on="track_id", how="left", maintain_order="left")
        )
        frame = frame.select(
            "SessionId",
            "ItemId",
            pl.col("timestamp").alias("Time"),
            pl.col("user_id").alias("UserId"),
            pl.col("listen_seconds").alias("ListenSeconds"),
            pl.col("completion_ratio").alias("CompletionRatio"),
        )
        written.append(out / f"{NAME}_{suffix}.txt")
        _write_tsv(frame, written[-1])
    return written


def session_rec_unseen(folder: Path) -> str:
    """What session-rec's loader drops: it keeps only test plays of tracks in its training file
    (``train_full``: train and validation), so those test plays, and the next-track targets
    among them, are never scored there."""
    known = pl.concat([plays(folder, s).select("track_id") for s in SESSION_REC_FILES["train_full"]]).unique()
    test = plays(folder, "test")
    unseen = test.join(known, on="track_id", how="anti").height
    targets = read_config(folder, "instances", "test").filter(pl.col("task") == "next-track")
    lost = targets.join(
        known.rename({"track_id": "target_track_id"}), on="target_track_id", how="anti"
    ).height
    return (
        f"session-rec's loader drops the test plays of tracks absent from {NAME}_train_full.txt: {unseen:,} of "
        f"{test.height:,} test plays ({unseen / max(test.height, 1):.1%}), and with them {lost} of the "
        f"{targets.height} next-track test targets; its scores are not the benchmark's"
    )


def export_csv(folder: Path, out: Path) -> list[Path]:
    """Plain CSV files; see the module docstring."""
    frames = {
        "plays": pl.concat(
            [plays(folder, s).with_columns(pl.lit(s).alias("split")) for s in ("train", "validation", "test")]
        ),
        "instances": read_config(folder, "instances").with_columns(_joined("candidates").alias("candidates")),
        "tracks": read_config(folder, "tracks", "catalog").with_columns(_joined("track_mbids").alias("track_mbids")),
        "users": read_config(folder, "users", "catalog"),
    }  # fmt: skip
    for config in _content_configs(folder):
        content = read_config(folder, config, "catalog")
        vector = "genes" if "genes" in content.columns else "embedding"
        frames[config] = content.with_columns(_joined(vector).alias(vector))
    written = []
    for name, frame in frames.items():
        written.append(out / f"{name}.csv")
        frame.write_csv(written[-1], null_value="")
    return written


def export(folder: Path, fmt: str, out: Path) -> list[Path]:
    """Write ``folder``'s export in ``fmt`` to the folder ``out`` (replaced whole, atomically:
    the files are written beside it and moved into place at the end); the files written."""
    if fmt not in EXPORTERS:
        raise MmbenchError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORTERS)}")
    if not layout.is_built(folder):
        raise MmbenchError(f"{folder}: not a build folder (no README.md and data/)")
    target, source = out.resolve(), folder.resolve()
    if target == source or target in source.parents:
        raise MmbenchError(f"--out {out} would replace the build folder {folder}; choose another folder")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise MmbenchError(
            f"--out {out} is a folder that mmbench export did not write; it is replaced whole, so give a new or empty one"
        )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / MARKER).write_text(f"{fmt}\n", encoding="utf-8")
    names = [p.name for p in EXPORTERS[fmt](folder, staging)]
    replace_tree(staging, target)
    return [out / name for name in names]


# The formats, by the name `mmbench export --format` takes.
EXPORTERS = {"recbole": export_recbole, "session-rec": export_session_rec, "csv": export_csv}
