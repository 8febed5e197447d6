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
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from mmbench.errors import MmbenchError
from mmbench.files import atomic_path
from mmbench.progress import progress_bar

PLAYS_NAME = "userid-timestamp-artid-artname-traid-traname.tsv"
PROFILE_NAME = "userid-profile.tsv"
ARCHIVE_NAME = "lastfm-dataset-1K.tar.gz"
LASTFM_PAGE = "http://ocelma.net/MusicRecommendationDataset/lastfm-1K.html"
DOWNLOAD_INSTRUCTIONS = (
    f"LastFM-1K is distributed for non-commercial use only, with attribution, from {LASTFM_PAGE}.\n"
    "The processed benchmark is published on the Hugging Face Hub as mmbench/lastfm1k-mm only once\n"
    "a maintainer has built and pushed it (gated, under the same terms); until then, build it.\n"
    "mmbench does not fetch the raw logs for you:\n"
    f"get {ARCHIVE_NAME} (about 640 MB) from {LASTFM_PAGE},\n"
    f"then check it with: mmbench download --check {ARCHIVE_NAME}\n"
    f"and build with:     mmbench build --raw {ARCHIVE_NAME} --out DIR"
)
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


def _blocks(
    stream: IO[bytes], digest: hashlib._Hash, read_bytes: list[int], bar: tqdm, block_bytes: int
) -> Iterator[tuple[bytes, int]]:
    """(block of whole lines, its first line number); a thread reads ahead, hashes the bytes
    into ``digest`` and counts them in ``read_bytes[0]``."""
    out: queue.Queue = queue.Queue(maxsize=2)

    def read() -> None:
        try:
            rest = b""
            first_line = 1
            while chunk := stream.read(block_bytes):
                digest.update(chunk)
                read_bytes[0] += len(chunk)
                bar.update(len(chunk))
                chunk = rest + chunk
                cut = chunk.rfind(b"\n") + 1
                if cut:
                    out.put((chunk[:cut], first_line))
                    first_line += chunk.count(b"\n", 0, cut)
                rest = chunk[cut:]
            if rest:
                out.put((rest + b"\n", first_line))
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


def _read_fields(data: bytes) -> pl.DataFrame:
    return pl.read_csv(
        data,
        separator="\t",
        has_header=False,
        quote_char=None,
        new_columns=list(PLAYS_FIELDS),
        schema=dict.fromkeys(PLAYS_FIELDS, pl.String),
        empty_string_is_null=False,
    )


def _line_bounds(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each line of a block ends (its newline) and starts."""
    line_ends = np.flatnonzero(data == 10)
    return line_ends, np.concatenate([[0], line_ends[:-1] + 1])


def _fast_fields(block: bytes, n: int) -> pl.DataFrame | None:
    """The block's ``n`` lines as six string columns when each has exactly six fields, else None.

    The CSV reader refuses lines with more than six fields and invalid UTF-8, so with five tabs
    per line on average it has seen exactly six fields everywhere. Any refusal (its exception
    class depends on where in the block the bad line sits) and any row count other than the
    block's lines leave the block to :func:`_exact_fields`.
    """
    if block.count(b"\t") != 5 * n:
        return None
    try:
        frame = _read_fields(block)
    except pl.exceptions.PolarsError:
        return None
    return frame if frame.height == n else None


def _exact_fields(block: bytes, data: np.ndarray, n: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """The lines with six fields in valid UTF-8 as string columns, their indices, and each line's
    reason code (0 = fine, else 1 + index in :data:`REJECT_REASONS`)."""
    line_ends, starts = _line_bounds(data)
    tabs = np.bincount(np.searchsorted(line_ends, np.flatnonzero(data == 9)), minlength=n)[:n]
    reason = np.where(tabs == 5, 0, 2).astype(np.int8)
    reason[_invalid_utf8_lines(block, line_ends)] = 1
    good = np.flatnonzero(reason == 0)
    # Drop the bad lines' bytes, so that the CSV reader sees six fields everywhere.
    clean = data[np.repeat(reason == 0, line_ends - starts + 1)].tobytes()
    empty = pl.DataFrame(schema=dict.fromkeys(PLAYS_FIELDS, pl.String))
    return (_read_fields(clean) if good.size else empty), good, reason


def parse_block(block: bytes, first_line: int) -> tuple[pl.DataFrame, list[dict]]:
    """Parse a block of whole lines; return (valid plays, rejects).

    ``first_line`` is the 1-based line number of the block's first line. Valid plays have the
    columns ``line`` (UInt32), :data:`PLAYS_FIELDS` as strings (an empty MBID as an empty
    string) and ``timestamp`` as Int64 epoch seconds. Rejects are dicts with the line number,
    the reason (one of :data:`REJECT_REASONS`) and the line's text.
    """
    data = np.frombuffer(block, dtype=np.uint8)
    n = block.count(b"\n")
    frame = _fast_fields(block, n)
    if frame is not None:
        good, reason = np.arange(n), np.zeros(n, dtype=np.int8)
    else:
        frame, good, reason = _exact_fields(block, data, n)
    ts_ok = pl.col("timestamp").str.contains(TIMESTAMP_PATTERN)
    parsed = frame.with_columns(
        pl.Series("line", (first_line + good).astype(np.uint32)),
        pl.when(ts_ok)
        .then(pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="ms"))
        .dt.epoch("s")
        .alias("timestamp"),
    )
    empty_user = pl.col("user_id") == ""
    late = pl.when(empty_user).then(3).when(pl.col("timestamp").is_null()).then(4).otherwise(0)
    late_reason = parsed.select(late.cast(pl.Int8)).to_series().to_numpy()
    reason[good] = late_reason
    rejected = np.flatnonzero(reason)
    if rejected.size:  # line bounds are needed only to quote rejected lines
        line_ends, starts = _line_bounds(data)
    rejects = [
        {
            "line": first_line + int(i),
            "reason": REJECT_REASONS[reason[i] - 1],
            "text": block[starts[i] : line_ends[i]].decode("utf-8", "backslashreplace")[:500],
        }
        for i in rejected
    ]
    valid = parsed.filter(pl.Series(late_reason == 0))
    return valid.select("line", *PLAYS_FIELDS), rejects


def _parse_and_code(block: bytes, first_line: int) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    """Parse a block; return its plays with categorical names, its MBID counts and its rejects."""
    valid, rejects = parse_block(block, first_line)
    # Categoricals share one process-wide dictionary: each name gets a UInt32 code that is the
    # same in every block, without a join per block.
    coded = valid.with_columns(pl.col("user_id", "artist_name", "track_name").cast(pl.Categorical))
    stats = coded.group_by("artist_name", "track_name", "artist_mbid", "track_mbid").len()
    return coded.select("line", "user_id", "timestamp", "artist_name", "track_name"), stats, rejects


def _pair_key() -> pl.Expr:
    """One UInt64 per (artist name, track name) from their categorical codes."""
    artist = pl.col("artist_name").to_physical().cast(pl.UInt64)
    return artist * (1 << 32) + pl.col("track_name").to_physical().cast(pl.UInt64)


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
    """Yield (role, binary stream, size) for the plays and profile files; the role is the file's
    name in the archive, whatever the user's copy is called."""
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
    for role, path in ((PLAYS_NAME, source.plays), (PROFILE_NAME, source.profile)):
        if path is not None:
            with path.open("rb") as stream:
                yield role, stream, path.stat().st_size


@dataclass
class _PlaysRead:
    """What reading the plays file gave: its valid plays per block (categorical names), the
    MBID counts per block, the reject counts, the lines read and the file's checksum."""

    blocks: list[pl.DataFrame]
    mbids: list[pl.DataFrame]
    reasons: Counter[str]
    lines: int
    checksum: dict


def _read_plays(
    name: str, stream: IO[bytes], size: int, rejects_out: IO[str], progress: bool, block_bytes: int
) -> _PlaysRead:
    """Parse the plays stream block by block, writing each rejected line to ``rejects_out``."""
    read = _PlaysRead([], [], Counter(), 0, {})
    digest, read_bytes = hashlib.md5(), [0]  # bytes counted apart from the bar, off with --quiet
    with (
        ThreadPoolExecutor(2) as pool,
        progress_bar(total=size, unit="B", unit_scale=True, desc="ingest plays", disable=not progress) as bar,
    ):
        pending: deque[Future] = deque()
        blocks_in = _blocks(stream, digest, read_bytes, bar, block_bytes)
        while True:
            # Two blocks parse at once (numpy and polars release the GIL); a bounded queue keeps
            # memory to a few blocks whatever the file's size.
            while len(pending) < 3 and (item := next(blocks_in, None)) is not None:
                pending.append(pool.submit(_parse_and_code, *item))
            if not pending:
                break
            coded, stats, rejects = pending.popleft().result()
            read.lines += coded.height + len(rejects)
            for record in rejects:
                read.reasons[record["reason"]] += 1
                rejects_out.write(json.dumps({"file": name, **record}, ensure_ascii=False) + "\n")
            bad = sum(read.reasons.values())
            if read.lines > 10_000 and bad > 0.5 * read.lines:
                first = rejects[0] if rejects else {"line": "?", "reason": "?"}
                raise MmbenchError(
                    f"{name}: {bad:,} of the first {read.lines:,} lines are malformed ({dict(read.reasons)}; "
                    f"e.g. line {first['line']}: {first['reason']}); is this the LastFM-1K plays file?"
                )
            if coded.height:
                read.blocks.append(coded)
                read.mbids.append(stats)
    read.checksum = {"md5": digest.hexdigest(), "bytes": read_bytes[0]}
    return read


def _dense_codes(
    blocks: list[pl.DataFrame], mbids: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The plays with dense codes for users and (artist, track) name pairs in sorted name order,
    so that codes depend on the content only, not on the file's order or the block size; the
    users (code, id) and the pairs (code, names, MBIDs, play count per MBID combination)."""
    plays = pl.concat(blocks)
    stats = (
        pl.concat(mbids)
        .group_by("artist_name", "track_name", "artist_mbid", "track_mbid")
        .agg(pl.col("len").sum().alias("n"))
        .with_columns(
            _pair_key().alias("key"),
            *[pl.col(c).replace("", None) for c in ("artist_mbid", "track_mbid")],
        )
    )
    pair_order = (
        stats.select("key", "artist_name", "track_name")
        .unique("key")
        .with_columns(pl.col("artist_name", "track_name").cast(pl.String))
        .sort("artist_name", "track_name")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("pair"))
    )
    order = (
        plays.select(pl.col("user_id").unique())
        .with_columns(pl.col("user_id").cast(pl.String).alias("name"))
        .sort("name")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("user"))
    )
    # A user's categorical code indexes a lookup array (a gather, far faster than a hash map).
    physical = order["user_id"].to_physical().to_numpy()
    user_of = np.zeros(int(physical.max()) + 1, dtype=np.uint32)
    user_of[physical] = order["user"].to_numpy()
    plays = plays.select(
        "line",
        pl.Series("user", user_of[plays["user_id"].to_physical().to_numpy()]),
        "timestamp",
        _pair_key()
        .replace_strict(pair_order["key"], pair_order["pair"], return_dtype=pl.UInt32)
        .alias("pair"),
    )
    pairs = (
        stats.join(pair_order.select("key", "pair"), on="key")
        .select("pair", pl.col("artist_name", "track_name").cast(pl.String), "artist_mbid", "track_mbid", "n")
        .sort("pair", "artist_mbid", "track_mbid", nulls_last=True)
    )
    return plays, order.select("user", pl.col("name").alias("user_id")), pairs


def ingest(
    source: RawSource, rejects_path: Path, progress: bool = True, block_bytes: int = BLOCK_BYTES
) -> IngestResult:
    """Read the plays and the profiles of ``source``; write rejected lines to ``rejects_path``.

    The plays are parsed ``block_bytes`` at a time (whole lines), so memory stays bounded by the
    compact columns kept per play, not by the size of the file.
    """
    read, checksums, profile_bytes = None, {}, None
    # Rejects go to a temporary file that becomes rejects_path only if the plays are usable.
    with atomic_path(rejects_path) as tmp_rejects:
        with tmp_rejects.open("w", encoding="utf-8") as rejects_out:
            for name, stream, size in _open_members(source):
                if name == PROFILE_NAME:
                    profile_bytes = stream.read()
                    checksums[name] = {
                        "md5": hashlib.md5(profile_bytes).hexdigest(),
                        "bytes": len(profile_bytes),
                    }
                else:
                    read = _read_plays(name, stream, size, rejects_out, progress, block_bytes)
                    checksums[name] = read.checksum
        where = source.plays or source.path
        if read is None:
            raise MmbenchError(f"{source.path}: holds no {PLAYS_NAME}; is this the LastFM-1K archive?")
        if read.lines == 0:
            raise MmbenchError(f"{where}: the plays file is empty")
        if not read.blocks:
            raise MmbenchError(
                f"{where}: none of its {read.lines:,} lines is a valid play ({dict(read.reasons)}); "
                "expected 6 tab-separated fields with a YYYY-MM-DDTHH:MM:SSZ timestamp"
            )
    for name, info in checksums.items():
        info["published_md5"] = PUBLISHED_MD5[name]
        info["matches_published"] = info["md5"] == PUBLISHED_MD5[name]
    plays, users, pairs = _dense_codes(read.blocks, read.mbids)
    profiles, profile_rejects = parse_profiles(profile_bytes)
    if profile_rejects:
        with rejects_path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in profile_rejects)
    report = {
        "rows_in": read.lines,
        "rows_out": plays.height,
        "removed": {r: read.reasons.get(r, 0) for r in REJECT_REASONS},
        "profile_rejects": dict(Counter(f"profile_{r['reason']}" for r in profile_rejects)),
        "users": users.height,
        "profiles_found": profile_bytes is not None,
        "inputs": checksums,
    }
    return IngestResult(plays, users.join(profiles, on="user_id", how="left"), pairs, report)


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


def checksum_warnings(report: dict) -> list[str]:
    """One message per input file whose MD5 differs from the published one."""
    return [
        f"{name}: MD5 {info['md5']} differs from the published {info['published_md5']} "
        "(fine for the sample or a subset; for the real data, check the download)"
        for name, info in report["inputs"].items()
        if not info["matches_published"]
    ]


def verify_download(path: Path) -> list[str]:
    """MD5 of each LastFM-1K file in ``path`` against the published value; raise on a mismatch."""
    source = resolve_raw(path)
    lines, bad = [], []
    for name, stream, size in _open_members(source):
        digest = hashlib.md5()
        with progress_bar(total=size, unit="B", unit_scale=True, desc=f"md5 {name}") as bar:
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
