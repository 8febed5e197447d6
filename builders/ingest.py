"""Stage 1, ingest: the raw LastFM-1K files to typed columns, with every bad line quarantined.

The plays file is read in blocks straight from ``lastfm-dataset-1K.tar.gz`` (streamed, never
extracted) or from the extracted TSV. It is tab-separated with no header and no quoting (names
contain ``"``), so lines are split on tabs only: numpy finds the line and tab positions of a
block, polars splits and parses the lines with exactly five tabs. A line that is not UTF-8, has
not exactly six fields, has an empty user id or a timestamp that is not ``YYYY-MM-DDTHH:MM:SSZ``
goes to the rejects file with its line number and reason.
"""

from __future__ import annotations

import hashlib
import json
import queue
import tarfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import pyarrow as pa
from tqdm.auto import tqdm

from mmbench.errors import MmbenchError

PLAYS_NAME = "userid-timestamp-artid-artname-traid-traname.tsv"
PROFILE_NAME = "userid-profile.tsv"
ARCHIVE_NAME = "lastfm-dataset-1K.tar.gz"
LASTFM_PAGE = "http://ocelma.net/MusicRecommendationDataset/lastfm-1K.html"
PUBLISHED_MD5 = {
    PLAYS_NAME: "64747b21563e3d2aa95751e0ddc46b68",
    PROFILE_NAME: "c53608b6b445db201098c1489ea497df",
}
PLAYS_FIELDS = ("user_id", "timestamp", "artist_mbid", "artist_name", "track_mbid", "track_name")
BLOCK_BYTES = 32 << 20
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
REJECT_REASONS = ("invalid_utf8", "wrong_field_count", "empty_user_id", "bad_timestamp")


@dataclass(frozen=True)
class RawSource:
    """Where the raw files are: the archive, the extracted folder, or the plays TSV alone."""

    kind: str  # "archive" | "folder" | "file"
    path: Path
    plays: Path | None = None
    profile: Path | None = None

    def fingerprint(self) -> dict[str, object]:
        """Cheap identity of the inputs (path, size, mtime) used to decide whether to re-ingest."""
        files = [self.path] if self.kind == "archive" else [self.plays, self.profile]
        return {str(f): [f.stat().st_size, f.stat().st_mtime_ns] for f in files if f is not None}


def resolve_raw(path: str | Path) -> RawSource:
    """Work out what ``--raw PATH`` points at, or raise a clear error."""
    p = Path(path)
    if not p.exists():
        raise MmbenchError(f"{p}: no such file or folder")
    if p.is_dir():
        plays = next(iter(sorted(p.rglob(PLAYS_NAME))), None)
        if plays is None:
            raise MmbenchError(f"{p}: folder holds no {PLAYS_NAME}")
        profile = plays.parent / PROFILE_NAME
        return RawSource("folder", p, plays, profile if profile.is_file() else None)
    if p.name.endswith((".tar.gz", ".tgz", ".tar")):
        if not tarfile.is_tarfile(p):
            raise MmbenchError(f"{p}: not a readable tar archive")
        return RawSource("archive", p)
    with p.open("rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        raise MmbenchError(f"{p}: gzip data but not named .tar.gz; expected {ARCHIVE_NAME} or {PLAYS_NAME}")
    profile = p.parent / PROFILE_NAME
    return RawSource("file", p, p, profile if profile.is_file() else None)


def _blocks(stream: IO[bytes], digest: hashlib._Hash, bar: tqdm, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines; a reader thread decompresses and hashes ahead of the parser."""
    out: queue.Queue = queue.Queue(maxsize=2)

    def read() -> None:
        try:
            rest = b""
            while chunk := stream.read(block_bytes):
                digest.update(chunk)
                bar.update(len(chunk))
                chunk = rest + chunk
                cut = chunk.rfind(b"\n") + 1
                if cut:
                    out.put(chunk[:cut])
                rest = chunk[cut:]
            if rest:
                out.put(rest + b"\n")
            out.put(None)
        except BaseException as exc:  # handed to the parsing thread, which re-raises it
            out.put(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    while (item := out.get()) is not None:
        if isinstance(item, BaseException):
            if isinstance(item, (OSError, EOFError, tarfile.TarError)):
                raise MmbenchError(f"cannot read the plays data: {item}") from None
            raise item
        yield item
    thread.join()


def _invalid_utf8_lines(block: bytes, line_ends: np.ndarray) -> np.ndarray:
    """Indices of the lines of ``block`` that are not valid UTF-8 (usually none)."""
    bad: list[int] = []
    start = 0
    while True:
        try:
            block[start:].decode("utf-8")
            return np.asarray(bad, dtype=np.int64)
        except UnicodeDecodeError as exc:
            line = int(np.searchsorted(line_ends, start + exc.start))
            bad.append(line)
            start = int(line_ends[line]) + 1


def parse_block(block: bytes, first_line: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse a block of whole lines; return (valid plays, rejects).

    ``first_line`` is the 1-based line number of the block's first line. Valid plays have the
    columns of :data:`PLAYS_FIELDS` plus ``line`` (UInt32) and ``timestamp`` as Int64 seconds.
    """
    data = np.frombuffer(block, dtype=np.uint8)
    line_ends = np.flatnonzero(data == 10)
    n = len(line_ends)
    tabs = np.bincount(np.searchsorted(line_ends, np.flatnonzero(data == 9)), minlength=n)[:n]
    reason = np.zeros(n, dtype=np.int8)  # 0 = fine, else 1 + index in REJECT_REASONS
    reason[tabs != 5] = 2
    reason[_invalid_utf8_lines(block, line_ends)] = 1
    offsets = np.concatenate([[0], line_ends + 1]).astype(np.int32)
    lines = pl.from_arrow(
        pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    )
    line_no = pl.Series("line", np.arange(first_line, first_line + n, dtype=np.uint32))
    frame = pl.DataFrame([line_no, lines.alias("raw"), pl.Series("reason", reason)])
    good = frame.filter(pl.col("reason") == 0)
    fields = (
        good["raw"]
        .cast(pl.String)
        .str.strip_suffix("\n")
        .str.split_exact("\t", 5)
        .struct.rename_fields(list(PLAYS_FIELDS))
        .struct.unnest()
    )
    ts_ok = fields["timestamp"].str.contains(TIMESTAMP_PATTERN)
    parsed = fields.with_columns(
        pl.Series("line", good["line"]),
        pl.when(ts_ok)
        .then(pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="ms"))
        .dt.epoch("s")
        .alias("timestamp"),
        *[pl.col(c).replace("", None) for c in ("artist_mbid", "track_mbid")],
    ).with_columns(
        pl.when(pl.col("user_id") == "")
        .then(3)
        .when(pl.col("timestamp").is_null())
        .then(4)
        .otherwise(0)
        .cast(pl.Int8)
        .alias("reason")
    )
    late = parsed.filter(pl.col("reason") != 0).select("line", "reason")
    rejects = (
        pl.concat([frame.filter(pl.col("reason") != 0).select("line", "reason"), late])
        .join(frame.select("line", "raw"), on="line")
        .sort("line")
    )
    valid = parsed.filter(pl.col("reason") == 0).drop("reason")
    return valid.select("line", *PLAYS_FIELDS), rejects


def _reject_records(rejects: pl.DataFrame, source: str) -> list[dict]:
    records = []
    for line, reason, raw in rejects.iter_rows():
        text = raw.rstrip(b"\n").decode("utf-8", "backslashreplace")
        records.append(
            {"file": source, "line": line, "reason": REJECT_REASONS[reason - 1], "text": text[:500]}
        )
    return records


class _Codes:
    """Incremental dictionary encoding of a key (one or more string columns) across blocks."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.table = pl.DataFrame(schema={**{c: pl.String for c in columns}, "code": pl.UInt32})

    def encode(self, frame: pl.DataFrame) -> pl.Series:
        keys = frame.select(self.columns)
        new = keys.unique().join(self.table, on=self.columns, how="anti", nulls_equal=True)
        if new.height:
            new = new.sort(self.columns).with_columns(
                (pl.int_range(new.height, dtype=pl.UInt32) + self.table.height).alias("code")
            )
            self.table = pl.concat([self.table, new])
        return keys.join(self.table, on=self.columns, how="left", nulls_equal=True)["code"]


@dataclass
class IngestResult:
    """The ingested plays (compact codes) and the side tables they refer to."""

    plays: pl.DataFrame  # line u32, user u32, timestamp i64, pair u32
    users: pl.DataFrame  # user u32, user_id, gender, age, country, signup
    pairs: (
        pl.DataFrame
    )  # pair u32, artist_name, track_name, artist_mbid, track_mbid, n (one row per mbid combination)
    report: dict


def _open_members(source: RawSource) -> Iterator[tuple[str, IO[bytes], int]]:
    """Yield (member name, binary stream, size) for the plays and profile files."""
    if source.kind == "archive":
        try:
            with tarfile.open(source.path, mode="r|*") as tar:
                for member in tar:
                    name = Path(member.name).name
                    if member.isfile() and name in (PLAYS_NAME, PROFILE_NAME):
                        stream = tar.extractfile(member)
                        assert stream is not None
                        yield name, stream, member.size
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise MmbenchError(f"{source.path}: cannot read the archive: {exc}") from None
        return
    for path in (source.plays, source.profile):
        if path is not None:
            with path.open("rb") as stream:
                yield path.name, stream, path.stat().st_size


def ingest(
    source: RawSource, rejects_path: Path, progress: bool = True, block_bytes: int = BLOCK_BYTES
) -> IngestResult:
    """Read the plays and the profiles of ``source``; write rejected lines to ``rejects_path``.

    The plays are parsed ``block_bytes`` at a time (whole lines), so memory stays bounded by the
    compact columns kept per play, not by the size of the file.
    """
    users = _Codes(["user_id"])
    pairs = _Codes(["artist_name", "track_name"])
    blocks: list[pl.DataFrame] = []
    mbids: list[pl.DataFrame] = []
    reasons: Counter[str] = Counter()
    checksums: dict[str, dict] = {}
    profile_bytes: bytes | None = None
    lines_read = 0
    tmp_rejects = rejects_path.with_name(rejects_path.name + ".tmp")
    with tmp_rejects.open("w", encoding="utf-8") as rejects_out:
        for name, stream, size in _open_members(source):
            if name == PROFILE_NAME:
                profile_bytes = stream.read()
                checksums[name] = {"md5": hashlib.md5(profile_bytes).hexdigest(), "bytes": len(profile_bytes)}
                continue
            digest = hashlib.md5()
            with tqdm(
                total=size, unit="B", unit_scale=True, desc="ingest plays", disable=not progress
            ) as bar:
                for block in _blocks(stream, digest, bar, block_bytes):
                    valid, rejects = parse_block(block, lines_read + 1)
                    lines_read += valid.height + rejects.height
                    for record in _reject_records(rejects, name):
                        reasons[record["reason"]] += 1
                        rejects_out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    if lines_read > 10_000 and sum(reasons.values()) > 0.5 * lines_read:
                        raise MmbenchError(
                            f"{name}: {sum(reasons.values()):,} of the first {lines_read:,} lines "
                            f"are malformed ({dict(reasons)}); is this the LastFM-1K plays file? "
                            f"See {rejects_path.name} for examples"
                        )
                    if valid.height == 0:
                        continue
                    pair = pairs.encode(valid)
                    blocks.append(
                        pl.DataFrame(
                            {
                                "line": valid["line"],
                                "user": users.encode(valid),
                                "timestamp": valid["timestamp"],
                                "pair": pair,
                            }
                        )
                    )
                    mbids.append(
                        valid.select(pair, "artist_mbid", "track_mbid")
                        .group_by("code", "artist_mbid", "track_mbid")
                        .len()
                    )
            checksums[name] = {"md5": digest.hexdigest(), "bytes": bar.n}
    if PLAYS_NAME not in checksums and source.kind != "file":
        tmp_rejects.unlink()
        raise MmbenchError(f"{source.path}: holds no {PLAYS_NAME}; is this the LastFM-1K archive?")
    if lines_read == 0:
        tmp_rejects.unlink()
        raise MmbenchError(f"{source.plays or source.path}: the plays file is empty")
    if not blocks:
        tmp_rejects.unlink()
        raise MmbenchError(
            f"{source.plays or source.path}: none of its {lines_read:,} lines is a valid play "
            f"({dict(reasons)}); expected 6 tab-separated fields with a YYYY-MM-DDTHH:MM:SSZ timestamp"
        )
    tmp_rejects.replace(rejects_path)
    for name, info in checksums.items():
        info["published_md5"] = PUBLISHED_MD5[name]
        info["matches_published"] = info["md5"] == PUBLISHED_MD5[name]
    # Renumber users and name pairs in sorted order, so that codes depend on the content only,
    # not on the file's order or the block size.
    order = users.table.sort("user_id").with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("user"))
    pair_order = pairs.table.sort("artist_name", "track_name").with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("pair")
    )
    plays = pl.concat(blocks).with_columns(
        pl.col("user").replace_strict(order["code"], order["user"], return_dtype=pl.UInt32),
        pl.col("pair").replace_strict(pair_order["code"], pair_order["pair"], return_dtype=pl.UInt32),
    )
    profiles, profile_rejects = parse_profiles(profile_bytes)
    for record in profile_rejects:
        reasons[f"profile_{record['reason']}"] += 1
    if profile_rejects:
        with rejects_path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in profile_rejects)
    user_table = order.select("user", "user_id").join(profiles, on="user_id", how="left")
    pair_table = (
        pl.concat(mbids)
        .group_by("code", "artist_mbid", "track_mbid")
        .agg(pl.col("len").sum().alias("n"))
        .join(pair_order, on="code")
        .drop("code")
        .sort("pair", "artist_mbid", "track_mbid", nulls_last=True)
    )
    report = {
        "rows_in": lines_read,
        "rows_out": plays.height,
        "removed": {r: reasons.get(r, 0) for r in REJECT_REASONS},
        "profile_rejects": {k: v for k, v in reasons.items() if k.startswith("profile_")},
        "users": user_table.height,
        "profiles_found": profile_bytes is not None,
        "inputs": checksums,
    }
    return IngestResult(plays, user_table, pair_table, report)


PROFILE_SCHEMA = {
    "user_id": pl.String,
    "gender": pl.String,
    "age": pl.Int32,
    "country": pl.String,
    "signup": pl.Date,
}


def parse_profiles(data: bytes | None) -> tuple[pl.DataFrame, list[dict]]:
    """Parse ``userid-profile.tsv`` (a ``#`` header, empty fields allowed); return (rows, rejects)."""
    if data is None:
        return pl.DataFrame(schema=PROFILE_SCHEMA), []
    rows, rejects = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw or raw.startswith(b"#"):
            continue

        def reject(reason: str, raw: bytes = raw, number: int = number) -> None:
            text = raw.decode("utf-8", "backslashreplace")
            rejects.append({"file": PROFILE_NAME, "line": number, "reason": reason, "text": text})

        try:
            fields = raw.decode("utf-8").split("\t")
        except UnicodeDecodeError:
            reject("invalid_utf8")
            continue
        if len(fields) != 5 or not fields[0]:
            reject("wrong_field_count")
            continue
        user_id, gender, age, country, signup = (f or None for f in fields)
        try:
            age_value = int(age) if age else None
            signup_value = datetime.strptime(signup, "%b %d, %Y").date() if signup else None
        except ValueError:
            reject("bad_value")
            continue
        rows.append((user_id, gender, age_value, country, signup_value))
    frame = pl.DataFrame(rows, schema=PROFILE_SCHEMA, orient="row").unique("user_id", keep="first")
    return frame.sort("user_id"), rejects


def warn_on_checksums(report: dict) -> list[str]:
    """Warnings for input files whose MD5 differs from the published one."""
    messages = []
    for name, info in report["inputs"].items():
        if not info["matches_published"]:
            messages.append(
                f"{name}: MD5 {info['md5']} differs from the published {info['published_md5']} "
                "(fine for the sample or a subset; for the real data, check the download)"
            )
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages


def verify_download(path: Path) -> list[str]:
    """MD5 of each LastFM-1K file in ``path`` against the published value; raise on a mismatch."""
    source = resolve_raw(path)
    lines, bad = [], []
    for name, stream, size in _open_members(source):
        digest = hashlib.md5()
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"md5 {name}") as bar:
            while block := stream.read(1 << 22):
                digest.update(block)
                bar.update(len(block))
        ok = digest.hexdigest() == PUBLISHED_MD5[name]
        lines.append(
            f"{'OK      ' if ok else 'MISMATCH'} {name} md5 {digest.hexdigest()} (published {PUBLISHED_MD5[name]})"
        )
        if not ok:
            bad.append(name)
    if not lines:
        raise MmbenchError(f"{path}: holds no {PLAYS_NAME}; is this the LastFM-1K archive?")
    if bad:
        raise MmbenchError(
            "\n".join(lines) + f"\n{path}: checksum mismatch for {', '.join(bad)}; download it again"
        )
    return lines
