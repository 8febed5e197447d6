"""Content sources: the audio and lyrics manifests a user assembles, joined to the catalogue.

LastFM-1K has neither audio nor lyrics, and the builder downloads nothing: a user lists the
files and texts they have in two manifests (CSV or JSON Lines), keyed by artist and track name
exactly like the plays, so that the identify stage's normalized key joins them to tracks.

- audio manifest: ``artist_name``, ``track_name``, ``path`` (relative to the manifest's folder
  or absolute; WAV, FLAC, OGG or MP3), optionally ``duration_seconds`` (the full track's length
  when the file is a preview); without it the duration is read from the file's header.
- lyrics manifest: ``artist_name``, ``track_name``, ``lyrics``, optionally ``language``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import soundfile

from mmbench.builders import audio, identify, lyrics
from mmbench.builders.embedding_cache import EmbeddingCache, input_digests
from mmbench.errors import MmbenchError

AUDIO_COLUMNS = ("artist_name", "track_name", "path")
LYRICS_COLUMNS = ("artist_name", "track_name", "lyrics")


def read_manifest(path: Path, required: tuple[str, ...], what: str) -> pl.DataFrame:
    """A manifest as strings with ``line`` (its line in the file) and ``track_id`` (given, or
    derived from artist_name and track_name); the first row wins for a song listed twice."""
    if not path.is_file():
        raise MmbenchError(f"{path}: {what} manifest not found")
    jsonl = path.suffix in (".jsonl", ".ndjson")
    try:
        frame = (
            pl.read_ndjson(path, infer_schema_length=None) if jsonl else pl.read_csv(path, infer_schema=False)
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MmbenchError(f"{path}: cannot read the {what} manifest: {str(exc).splitlines()[0]}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MmbenchError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)} "
            f"(see docs/building.md)"
        )
    frame = frame.with_row_index("line", offset=1 if jsonl else 2)
    empty = frame.filter(
        pl.any_horizontal(pl.col(c).cast(pl.String).fill_null("").str.strip_chars() == "" for c in required)
    )
    if empty.height:
        row = empty.row(0, named=True)
        blank = next(c for c in required if not str(row[c] or "").strip())
        raise MmbenchError(f"{path}: line {row['line']}: empty {blank}")
    if "track_id" not in required:
        frame = frame.with_columns(
            identify.track_ids_for(frame["artist_name"].cast(pl.String), frame["track_name"].cast(pl.String))
        )
    return frame.unique("track_id", keep="first", maintain_order=True)


def read_audio_manifest(path: Path) -> pl.DataFrame:
    """(track_id, path, duration_seconds) for every listed file; the files must exist, and the
    duration is the manifest's where given, else the file header's."""
    frame = read_manifest(path, AUDIO_COLUMNS, "audio")
    base = path.parent
    files = [str(p if Path(p).is_absolute() else base / p) for p in frame["path"].to_list()]
    given = (
        frame["duration_seconds"].cast(pl.Float64, strict=False).to_list()
        if "duration_seconds" in frame.columns
        else [None] * frame.height
    )
    durations = []
    for line, file, seconds in zip(frame["line"].to_list(), files, given, strict=True):
        if seconds is not None and seconds > 0:
            durations.append(seconds)
            continue
        try:
            durations.append(soundfile.info(file).duration)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            raise MmbenchError(f"{path}: line {line}: cannot read audio file {file}: {exc}") from None
    return pl.DataFrame(
        {"track_id": frame["track_id"], "path": files, "duration_seconds": durations},
        schema={"track_id": pl.String, "path": pl.String, "duration_seconds": pl.Float32},
    )


def read_lyrics_manifest(path: Path) -> pl.DataFrame:
    """(track_id, language, lyrics) for every listed song."""
    frame = read_manifest(path, LYRICS_COLUMNS, "lyrics")
    language = pl.col("language").cast(pl.String) if "language" in frame.columns else pl.lit(None, pl.String)
    return frame.select("track_id", language.alias("language"), pl.col("lyrics").cast(pl.String))


def read_manifests(audio: Path | None, lyrics: Path | None) -> dict[str, pl.DataFrame]:
    """The manifests given, read and keyed by kind (``audio``, ``lyrics``)."""
    out = {}
    if audio is not None:
        out["audio"] = read_audio_manifest(audio)
    if lyrics is not None:
        out["lyrics"] = read_lyrics_manifest(lyrics)
    return out


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


def config_suffix(encoder: str) -> str:
    """The part of a config name after ``audio-``/``lyrics-`` for an encoder given by name, Hub
    id or folder: its last path component (``BAAI/bge-m3`` -> ``bge-m3``), so the config is
    one folder of the published dataset."""
    return encoder.rstrip("/").rsplit("/", 1)[-1]


def embed_content(
    kind: str,
    encoder: str,
    rows: pl.DataFrame,
    root: Path,
    options: dict,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> tuple[pl.DataFrame, dict]:
    """The ``<kind>-<encoder>`` rows of ``rows`` (``track_id`` with ``path`` for audio or
    ``lyrics`` for lyrics, sorted by track id): computed for this shard's tracks that the cache
    under ``root`` lacks, then read back from the cache (every shard's) with a report."""
    if kind == "audio" and encoder not in audio.AUDIO_ENCODERS:
        raise MmbenchError(f"unknown audio encoder {encoder!r}; available: {', '.join(audio.AUDIO_ENCODERS)}")
    if rows.height == 0:
        raise MmbenchError(
            f"the {kind} manifest names no track of the catalogue (check artist and track names)"
        )
    model = options.get("model") or ""
    i, n = shard
    store = EmbeddingCache(root, f"{kind}-{encoder}", model, shard="main" if n == 1 else f"shard-{i}-of-{n}")
    rows = rows.with_columns(pl.Series("input", input_digests(kind, rows)))
    mine = rows.with_row_index("k").filter(pl.col("k") % n == i)
    mine = mine.filter([not store.has(t, d) for t, d in zip(mine["track_id"], mine["input"], strict=True)])
    failed: list = []
    if mine.height and kind == "audio":
        loaded = audio.audio_encoder(encoder, **options)
        failed = audio.embed_audio(
            loaded,
            mine["track_id"].to_list(),
            mine["path"].to_list(),
            mine["input"].to_list(),
            store,
            progress,
        )
    elif mine.height:
        device = options.get("device") or "auto"
        lyrics.embed_lyrics(
            encoder, mine["track_id"].to_list(), mine["lyrics"].to_list(), mine["input"].to_list(), store,
            device=device, progress=progress,
        )  # fmt: skip
    current = [t for t, d in zip(rows["track_id"], rows["input"], strict=True) if store.has(t, d)]
    frame = store.frame(current)
    if frame.height == 0 and n == 1:
        raise MmbenchError(
            f"no {kind} could be embedded: every file failed (first: {failed[0]['error'] if failed else '?'})"
        )
    report = {
        **store.meta,
        "embedded": frame.height,
        "computed_now": mine.height - len(failed),
        "failed": failed,
    }
    if kind == "lyrics":
        limit = store.meta.get("max_seq_length", 1 << 30)
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
    """The content configs of the catalogue's tracks (``catalog``: a ``track_id`` column), one
    per kind given: ``manifests[kind]`` is the read manifest, ``encoders[kind]`` the encoder.
    ``options`` (``model``, ``trust_remote_code``: audio only; ``device``) go to the encoders.
    Keyed by config name (``audio-mfcc``, ``lyrics-minilm``, ...); used by the build and by
    ``mmbench embed`` (one shard of the work per machine)."""
    column = {"audio": "path", "lyrics": "lyrics"}
    out = {}
    for kind, listed in manifests.items():
        rows = (
            listed.join(catalog.select("track_id"), on="track_id")
            .sort("track_id")
            .select("track_id", column[kind])
        )
        kind_options = options if kind == "audio" else {"device": options.get("device")}
        config = f"{kind}-{config_suffix(encoders[kind])}"
        out[config] = embed_content(kind, encoders[kind], rows, root, kind_options, shard, progress)
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
    into the embedding cache ``cache``, for each manifest given (``audio``, ``lyrics``); return
    one summary line per config."""
    from mmbench.loading import load

    if not any(manifests.values()):
        raise MmbenchError("give --audio-manifest and/or --lyrics-manifest")
    i, n = parse_shard(shard)
    read = read_manifests(manifests.get("audio"), manifests.get("lyrics"))
    catalog = load("tracks", "catalog", source=source).to_polars()
    done = embed_catalog(catalog, read, encoders, options, cache, (i, n), progress=progress)
    return [
        f"{config} shard {i}/{n}: {report['computed_now']:,} embedded, {len(report['failed'])} failed"
        for config, (_, report) in done.items()
    ]
