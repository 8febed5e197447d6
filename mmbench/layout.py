"""The published folder's layout (DESIGN.md section 4): ``README.md``, ``build_report.json`` and
``data/<config>/<split>-0000i-of-0000N.parquet``. Loading, integrity checks and publishing all
find files through these functions."""

from __future__ import annotations

from pathlib import Path

DATA = "data"


def config_folder(folder: Path, config: str) -> Path:
    """The folder of one config's parquet files."""
    return Path(folder) / DATA / config


def shard_name(split: str, index: int, count: int) -> str:
    """The file name of shard ``index`` of ``count`` of a split."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def split_pattern(config: str, split: str) -> str:
    """The split's files as a path pattern relative to the folder (what the card declares)."""
    return f"{DATA}/{config}/{split}-*.parquet"


def split_files(folder: Path, config: str, split: str) -> list[Path]:
    """The parquet files of one config split, in shard order."""
    return sorted(config_folder(folder, config).glob(f"{split}-*.parquet"))


def config_files(folder: Path, config: str) -> list[Path]:
    """The parquet files of every split of one config."""
    return sorted(config_folder(folder, config).glob("*.parquet"))


def configs(folder: Path) -> list[str]:
    """The configs a folder holds."""
    data = Path(folder) / DATA
    return sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []


def splits(folder: Path, config: str) -> list[str]:
    """The splits a config of a folder holds."""
    return sorted({p.name.split("-")[0] for p in config_folder(folder, config).glob("*.parquet")})


def parquet_files(folder: Path) -> list[Path]:
    """Every parquet file of the folder, sorted."""
    return sorted((Path(folder) / DATA).rglob("*.parquet"))


def is_built(folder: Path) -> bool:
    """Whether a folder looks like a published build (a card and a data folder)."""
    return (Path(folder) / "README.md").is_file() and (Path(folder) / DATA).is_dir()
