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

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import soundfile

from mmbench.builders import identify
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


def cache_folder(label: str, *key: str) -> str:
    """A cache folder's name: a readable slug of ``label`` and a digest of ``label`` and ``key``."""
    digest = hashlib.sha256("\x1f".join((label, *key)).encode("utf-8")).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
    return f"{slug}-{digest}"


class EmbeddingCache:
    """Embeddings already computed for one config and model: ``.npz`` chunks (track ids, their
    vectors, a digest of the input each came from, no pickle) in a folder. A chunk is named by
    a digest of its content and written under a temporary name first, so a killed run keeps
    every finished chunk and never leaves a partial one; a vector whose input changed since
    (other lyrics, another file) no longer counts. Shards write their own chunks into the same
    folder, and merging shards is copying their folders together."""

    def __init__(self, root: Path, config: str, model: str, shard: str = "main"):
        self.folder = root / cache_folder(config, model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self.vectors: dict[str, np.ndarray] = {}
        self.inputs: dict[str, str] = {}
        self.tokens: dict[str, int] = {}
        for file in sorted(self.folder.glob("*.npz")):
            try:
                with np.load(file, allow_pickle=False) as chunk:
                    ids = chunk["track_ids"].tolist()
                    self.vectors.update(zip(ids, chunk["embedding"], strict=True))
                    self.inputs.update(zip(ids, chunk["inputs"].tolist(), strict=True))
                    if "tokens" in chunk:
                        self.tokens.update(zip(ids, chunk["tokens"].tolist(), strict=True))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue  # an unreadable chunk: its tracks are simply computed again
        meta = self.folder / "meta.json"
        self.meta: dict = json.loads(meta.read_text()) if meta.exists() else {}

    def has(self, track_id: str, digest: str) -> bool:
        """Whether the track's vector was computed from this very input."""
        return self.inputs.get(track_id) == digest

    def describe(self, **meta: object) -> None:
        """Record what produced the embeddings (model, dimension, ...) once, for the report."""
        if meta != self.meta:
            self.meta = dict(meta)
            _write_atomic(self.folder / "meta.json", json.dumps(self.meta, sort_keys=True).encode())

    def add(
        self, track_ids: list[str], matrix: np.ndarray, inputs: list[str], tokens: list[int] | None = None
    ) -> None:
        """Store one chunk: embeddings, the digests of their inputs, and for texts their length in tokens."""
        if not track_ids:
            return
        arrays = {
            "track_ids": np.asarray(track_ids, dtype=str),
            "embedding": np.asarray(matrix, dtype=np.float32),
            "inputs": np.asarray(inputs, dtype=str),
        }
        if tokens is not None:
            arrays["tokens"] = np.asarray(tokens, dtype=np.int64)
            self.tokens.update(zip(track_ids, tokens, strict=True))
        name = hashlib.sha256(
            "\n".join(f"{t}\t{d}" for t, d in zip(track_ids, inputs, strict=True)).encode()
        ).hexdigest()
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        _write_atomic(self.folder / f"{self.shard}-{name[:20]}.npz", buffer.getvalue())
        self.vectors.update(zip(track_ids, arrays["embedding"], strict=True))
        self.inputs.update(zip(track_ids, inputs, strict=True))

    def frame(self, track_ids: list[str]) -> pl.DataFrame:
        """(track_id, embedding) for the given tracks that have one, in the given order."""
        have = [t for t in track_ids if t in self.vectors]
        dim = len(next(iter(self.vectors.values()))) if self.vectors else 0
        matrix = np.stack([self.vectors[t] for t in have]) if have else np.zeros((0, dim), dtype=np.float32)
        return pl.DataFrame({"track_id": have, "embedding": matrix}, schema_overrides={"track_id": pl.String})


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def input_digests(kind: str, rows: pl.DataFrame) -> list[str]:
    """What each embedding is computed from: the lyrics text, or the audio file's name and size."""
    if kind == "lyrics":
        return [hashlib.sha256(t.encode("utf-8")).hexdigest()[:16] for t in rows["lyrics"].to_list()]
    return [f"{Path(p).name}:{Path(p).stat().st_size}" for p in rows["path"].to_list()]


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
    from mmbench.builders import audio, lyrics

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
