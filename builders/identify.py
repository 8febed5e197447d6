"""Stage 2, identify: one canonical item per song, with a stable id derived from its names."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from mmbench.tracks import normalize_name


def track_id_for(artist_name: str, track_name: str) -> str:
    """``t`` + the first 16 hex digits of SHA-1 over the normalized (artist, track) pair.

    The two names are joined by U+001F (unit separator), which normalization never produces
    from a printable name, so ("a b", "c") and ("a", "b c") get different ids.
    """
    key = f"{normalize_name(artist_name)}\x1f{normalize_name(track_name)}"
    return "t" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def track_ids_for(artist_names: pl.Series, track_names: pl.Series) -> pl.Series:
    """:func:`track_id_for` over columns; names of printable ASCII are normalized by polars.

    For printable ASCII, NFKC changes nothing, casefold equals lowercase and the only
    whitespace is the space, so the vectorized path gives exactly what :func:`normalize_name`
    gives (a property test checks it); every other name goes through :func:`normalize_name`.
    """
    frame = pl.DataFrame({"a": artist_names, "t": track_names})
    printable = r"^[ -~]*$"
    simple = frame.select(
        pl.col("a").str.contains(printable) & pl.col("t").str.contains(printable)
    ).to_series()

    def collapse(column: str) -> pl.Expr:
        return pl.col(column).str.to_lowercase().str.replace_all(" +", " ").str.strip_chars(" ")

    keys = frame.select(
        pl.when(simple).then(pl.concat_str(collapse("a"), pl.lit("\x1f"), collapse("t")))
    ).to_series()
    out = []
    for key, artist, track in zip(keys, artist_names, track_names, strict=True):
        if key is None:
            key = f"{normalize_name(artist)}\x1f{normalize_name(track)}"
        out.append("t" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16])
    return pl.Series("track_id", out, dtype=pl.String)


def identify(plays: pl.DataFrame, pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Map every play's raw (artist, track) pair to a track; build the raw track catalogue.

    ``pairs`` has one row per (pair, artist_mbid, track_mbid) with its play count ``n``. Returns
    the plays with a ``track`` code (the rank of the track id), the tracks (``track``,
    ``track_id``, the most played spelling of the names, the most played artist MBID, the sorted
    track MBIDs, ``n_plays``) and the stage report.
    """
    names = pairs.group_by("pair").agg(pl.col("artist_name", "track_name").first(), pl.col("n").sum())
    names = names.with_columns(track_ids_for(names["artist_name"], names["track_name"]))
    spelling = names.sort(
        ["track_id", "n", "artist_name", "track_name"], descending=[False, True, False, False]
    )
    tracks = (
        spelling.group_by("track_id", maintain_order=True)
        .agg(pl.col("artist_name").first(), pl.col("track_name").first(), pl.col("n").sum().alias("n_plays"))
        .sort("track_id")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("track"))
    )
    with_ids = pairs.join(names.select("pair", "track_id"), on="pair")
    artist_mbid = (
        with_ids.drop_nulls("artist_mbid")
        .group_by("track_id", "artist_mbid")
        .agg(pl.col("n").sum())
        .sort(["track_id", "n", "artist_mbid"], descending=[False, True, False])
        .group_by("track_id", maintain_order=True)
        .agg(pl.col("artist_mbid").first())
    )
    track_mbids = (
        with_ids.drop_nulls("track_mbid")
        .group_by("track_id")
        .agg(pl.col("track_mbid").unique().sort().alias("track_mbids"))
    )
    tracks = (
        tracks.join(artist_mbid, on="track_id", how="left")
        .join(track_mbids, on="track_id", how="left")
        .with_columns(pl.col("track_mbids").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select("track", "track_id", "artist_name", "track_name", "artist_mbid", "track_mbids", "n_plays")
    )
    pair_to_track = names.join(tracks.select("track_id", "track"), on="track_id")
    # Pair codes are dense (0 .. pairs - 1): a lookup array maps them, far faster than a hash map.
    lookup = np.zeros(len(pair_to_track), dtype=np.uint32)
    lookup[pair_to_track["pair"].to_numpy()] = pair_to_track["track"].to_numpy()
    plays = plays.with_columns(pl.Series("track", lookup[plays["pair"].to_numpy()])).drop("pair")
    report = {
        "rows_in": plays.height,
        "rows_out": plays.height,
        "removed": {},
        "raw_name_pairs": names.height,
        "tracks": tracks.height,
        "tracks_with_track_mbid": int((tracks["track_mbids"].list.len() > 0).sum()),
        "plays_without_track_mbid": int(pairs.filter(pl.col("track_mbid").is_null())["n"].sum()),
    }
    return plays, tracks, report
