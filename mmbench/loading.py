"""Loading the dataset: a local build first, the Hub otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from mmbench import layout
from mmbench.errors import MmbenchError
from mmbench.progress import datasets_quiet
from mmbench.schema import DEFAULT_CONFIG, HUB_ID, SPLITS


def default_local_dir() -> Path:
    """Where ``mmbench build`` writes by default and ``mmbench.load`` looks first:
    ``$MMBENCH_HOME/lastfm1k-mm`` (``MMBENCH_HOME`` defaults to ``~/.cache/mmbench``)."""
    home = os.environ.get("MMBENCH_HOME") or Path.home() / ".cache" / "mmbench"
    return Path(home) / "lastfm1k-mm"


def resolve_source(source: str | os.PathLike | None = None) -> str:
    """The folder or Hub id to load from.

    ``source`` may be a build folder or a Hub id. When omitted: the default local build if it
    exists, else the Hub id ``mmbench/lastfm1k-mm``.
    """
    if source is not None:
        path = Path(source)
        if path.is_dir():
            if not layout.is_built(path):
                raise MmbenchError(
                    f"{path}: not a built dataset folder (no README.md and data/); run mmbench build"
                )
            return str(path)
        if str(source).count("/") == 1 and not str(source).startswith((".", "/")):
            return str(source)
        raise MmbenchError(f"{source}: no such dataset folder")
    local = default_local_dir()
    return str(local) if (local / "README.md").is_file() else HUB_ID


def load(config: str = DEFAULT_CONFIG, split: str | None = None, source: str | os.PathLike | None = None):
    """Load a config of LastFM-1K-MM as a ``datasets.Dataset`` (or ``DatasetDict`` if ``split`` is None).

    Configs and splits: sessions (train, validation, test), instances (validation, test),
    tracks and users (catalog), and the content configs a build adds (audio-*, lyrics-*, mgphot).
    """
    import datasets

    where = resolve_source(source)
    local = Path(where).is_dir()
    if local:
        available = layout.configs(Path(where))
        if config not in available:
            raise MmbenchError(f"{where}: no config {config!r}; available: {', '.join(available)}")
        splits = layout.splits(Path(where), config)
    else:
        splits = list(SPLITS.get(config, ()))
    if split is not None and splits and split not in splits:
        raise MmbenchError(
            f"config {config!r} has no split {split!r}; splits: {', '.join(sorted(set(splits)))}"
        )
    try:
        with datasets_quiet():
            if local:
                return datasets.load_dataset(
                    where, config, split=split, cache_dir=_cache_dir(Path(where), config)
                )
            return datasets.load_dataset(where, config, split=split)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        if local:
            raise MmbenchError(f"{where}: cannot load config {config!r}: {exc}") from None
        raise MmbenchError(
            f"no local build at {default_local_dir()} and the Hub dataset {where} could not be loaded "
            f"({type(exc).__name__}); run `mmbench build --sample` or `mmbench build --raw PATH`, "
            "or pass source=FOLDER"
        ) from None


def built_from_lastfm1k(report: dict) -> bool:
    """Whether a build report's raw inputs are the published LastFM-1K files (their MD5s); the
    embedded sample and any subset are not: their card, datasheet and Croissant say so first."""
    inputs = report.get("inputs") or {}
    return bool(inputs) and all(info.get("matches_published") for info in inputs.values())


SYNTHETIC_NOTE = (
    "Not LastFM-1K data: built from raw files that are not the published LastFM-1K archive (the "
    "embedded synthetic sample, or a subset), so its figures describe those files and no result "
    "on it says anything about real listening."
)


def build_report(source: str | os.PathLike | None = None) -> dict:
    """The build's ``build_report.json`` (recipe, accounting, protocol rules, fingerprint), from a
    local build or the Hub."""
    import json

    where = resolve_source(source)
    if Path(where).is_dir():
        path = Path(where) / "build_report.json"
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(where, "build_report.json", repo_type="dataset"))
        except Exception as exc:  # any failure of the download is one message to the user
            raise MmbenchError(f"{where}: cannot download build_report.json ({type(exc).__name__})") from None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MmbenchError(f"{path}: not a readable build report ({exc})") from None


def target_can_repeat_prefix(source: str | os.PathLike | None = None) -> bool:
    """Whether a next-track target of this build may be a track of its session prefix (the
    build's ``protocol`` rule). A folder without a build report, or a report without the rule,
    states none: a target may repeat the prefix."""
    where = resolve_source(source)
    if Path(where).is_dir() and not (Path(where) / "build_report.json").is_file():
        return True
    return bool(build_report(where).get("protocol", {}).get("target_can_repeat_prefix", True))


def _cache_dir(folder: Path, config: str) -> str:
    """The ``datasets`` cache folder for one config of a local build.

    ``datasets`` keys the cache of a local folder by its card's metadata alone, so a rebuild in
    the same place (or another build with the same card) would be served the old data. The
    folder here is named by the config's parquet files: their full paths, sizes and times.
    """
    import hashlib

    import datasets

    digest = hashlib.sha256()
    for f in layout.config_files(folder, config):
        stat = f.stat()
        digest.update(f"{f.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "mmbench" / digest.hexdigest()[:16])


def load_table(
    config: str, split: str, source: str | os.PathLike | None = None, columns: list[str] | None = None
):
    """One config split as a ``pyarrow.Table``: read straight from a local build's parquet
    files, or through ``datasets`` for a Hub id. Used by the evaluator, which needs columns,
    not a ``datasets`` cache."""
    import pyarrow.parquet as pq

    where = resolve_source(source)
    if Path(where).is_dir():
        files = layout.split_files(Path(where), config, split)
        if not files:
            raise MmbenchError(f"{where}: no {config}/{split} data ({layout.split_pattern(config, split)})")
        return pq.ParquetDataset(files).read(columns=columns)
    table = load(config, split, where).data.table
    return table.select(columns) if columns else table
