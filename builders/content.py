"""The content stage: each content kind of :data:`~mmbench.builders.kinds.KINDS` that a build has
(a manifest given, or made from the catalogue) embedded for the catalogue's tracks, each config
from its own embedding cache.

LastFM-1K has neither audio nor lyrics, and the builder downloads nothing: a user lists the
files and texts they have in manifests (CSV or JSON Lines), keyed by artist and track name
exactly like the plays, so that the identify stage's normalized key joins them to tracks.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.builders.kinds import KINDS, MANIFEST_KINDS, ContentKind
from mmbench.errors import MmbenchError


def read_manifests(paths: dict[str, Path | None]) -> dict[str, pl.DataFrame]:
    """The manifests given (``paths``: by kind name, None for one not given), read and keyed by kind."""
    return {
        kind.name: kind.read_manifest(paths[kind.name])
        for kind in MANIFEST_KINDS
        if kind.read_manifest is not None and paths.get(kind.name) is not None
    }


def coverage(catalog: pl.DataFrame, plays: pl.DataFrame, track_ids: pl.Series) -> dict[str, float | int]:
    """How many catalogue tracks have the content, and the share of kept plays they cover.

    ``catalog`` has ``track`` and ``track_id``; ``plays`` has ``track``.
    """
    has = catalog.filter(pl.col("track_id").is_in(track_ids.implode()))
    covered = plays.join(has.select("track"), on="track").height
    return {
        "tracks": has.height,
        "tracks_share": has.height / max(1, catalog.height),
        "plays_share": covered / max(1, plays.height),
    }


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise MmbenchError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise MmbenchError(f"--shard {text!r}: expected 0 <= i < n")
    return i, n


def embed_content(
    kind: ContentKind,
    encoder: str,
    rows: pl.DataFrame,
    root: Path,
    options: dict,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> tuple[pl.DataFrame, dict]:
    """The ``<kind>-<encoder>`` rows of ``rows`` (``track_id`` and the kind's input column, sorted
    by track id): computed for this shard's tracks that the cache under ``root`` lacks, then read
    back from the cache (every shard's) with a report."""
    kind.check_encoder(encoder)
    if rows.height == 0:
        raise MmbenchError(
            f"the {kind.name} manifest names no track of the catalogue (check artist and track names)"
        )
    model = options.get("model") or ""
    i, n = shard
    label = f"{kind.name}-{encoder}"
    store = EmbeddingCache(root, label, model, shard="main" if n == 1 else f"shard-{i}-of-{n}")
    rows = rows.with_columns(pl.Series("input", kind.input_digests(rows[kind.column].to_list())))
    mine = rows.with_row_index("k").filter(pl.col("k") % n == i)
    mine = mine.filter([not store.has(t, d) for t, d in zip(mine["track_id"], mine["input"], strict=True)])
    failed: list = []
    if mine.height:
        kind_options = {k: v for k, v in options.items() if k in kind.options}
        failed = kind.embed(
            encoder, mine["track_id"].to_list(), mine[kind.column].to_list(), mine["input"].to_list(), store,
            kind_options, progress,
        )  # fmt: skip
    current = [t for t, d in zip(rows["track_id"], rows["input"], strict=True) if store.has(t, d)]
    frame = store.frame(current)
    if frame.height == 0 and n == 1:
        raise MmbenchError(
            f"no {kind.name} could be embedded: every input failed "
            f"(first: {failed[0]['error'] if failed else '?'})"
        )
    report = {
        **store.meta,
        "embedded": frame.height,
        "computed_now": mine.height - len(failed),
        "failed": failed,
    }
    if "max_seq_length" in store.meta:
        limit = store.meta["max_seq_length"]
        report["truncated"] = sum(store.tokens.get(t, 0) > limit for t in frame["track_id"])
    return frame, report


def embed_catalog(
    catalog: pl.DataFrame,
    manifests: dict[str, pl.DataFrame],
    encoders: dict[str, str],
    options: dict,
    root: Path,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> dict[str, tuple[pl.DataFrame, dict]]:
    """The content configs of the catalogue's tracks (``catalog``: ``track_id``, ``artist_name``,
    ``track_name``), one per kind the build has: a kind read from a manifest when
    ``manifests[kind]`` is given, a kind made from the catalogue when ``encoders[kind]`` is not
    empty. ``encoders[kind]`` is the kind's encoder; ``options`` (``model``, ``device``,
    ``trust_remote_code``) go to the kinds that take them. Keyed by config name (``audio-mfcc``,
    ``lyrics-minilm``, ``text-minilm``, ...); used by the build and by ``mmbench embed`` (one
    shard of the work per machine)."""
    out = {}
    for kind in KINDS:
        if kind.from_catalog is not None and encoders.get(kind.name):
            listed = kind.from_catalog(catalog)
        elif kind.name in manifests:
            listed = manifests[kind.name]
        else:
            continue
        rows = listed.join(catalog.select("track_id"), on="track_id").sort("track_id")
        config = kind.config(encoders[kind.name])
        out[config] = embed_content(kind, encoders[kind.name], rows.select("track_id", kind.column), root, options, shard, progress)  # fmt: skip
    return out


def embed_shard(
    source: str | None,
    manifests: dict[str, Path | None],
    encoders: dict[str, str],
    options: dict,
    cache: Path,
    shard: str,
    progress: bool = True,
) -> list[str]:
    """``mmbench embed``: embed shard ``shard`` (``"i/n"``) of the catalogue of build ``source``
    into the embedding cache ``cache``, for each manifest given and each kind made from the
    catalogue whose encoder is given; return one summary line per config."""
    from mmbench.loading import load

    given = {name: encoder for name, encoder in encoders.items() if encoder}
    wanted = [k for k in KINDS if manifests.get(k.name) or (k.from_catalog is not None and k.name in given)]
    if not wanted:
        raise MmbenchError(
            "give " + " and/or ".join(f"--{k.name}-manifest" for k in MANIFEST_KINDS)
            + " or " + " or ".join(f"--{k.name}-encoder" for k in KINDS if k.from_catalog is not None)
        )  # fmt: skip
    i, n = parse_shard(shard)
    read = read_manifests(manifests)
    catalog = load("tracks", "catalog", source=source).to_polars()
    encoders = {k.name: encoders[k.name] for k in wanted}
    done = embed_catalog(catalog, read, encoders, options, cache, (i, n), progress=progress)
    return [
        f"{config} shard {i}/{n}: {report['computed_now']:,} embedded, {len(report['failed'])} failed"
        for config, (_, report) in done.items()
    ]
