"""Time the core build stages on a full-size (19,150,868-line) synthetic LastFM-1K plays file.

    python benchmarks/build_full.py [--lines N] [--repeat 3] [--work /tmp/mmbench-full]

Writes the synthetic file once (cached in --work), then runs, side by side and --repeat times
each, in fresh subprocesses:

* ``mmbench build --raw FILE --text-encoder ""`` (official recipe without the text config:
  ingest to instances, then publish; the per-stage times come from the build's own log), and
* a straightforward polars implementation of the paper's preprocessing (read the whole TSV,
  filter users and tracks, sessionize, dedupe, keep sessions of >= 10 tracks, users with >= 50
  sessions), as the reference point.

Prints the wall time and peak RSS of each run, the medians and the ratio.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

FULL_LINES = 19_150_868
N_USERS = 992
N_TRACKS = 1_000_000
START = 1108339200  # 2005-02-14
END = 1241481600  # 2009-05-05


def write_synthetic(path: Path, lines: int, seed: int = 0) -> None:
    """A plays file in the LastFM-1K format: users in order, each newest first, Zipf tracks."""
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, N_USERS) + 0.05
    counts = np.floor(weights / weights.sum() * lines).astype(np.int64)
    counts[: lines - counts.sum()] += 1
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out, tqdm(total=lines, unit="line", desc="synthetic plays") as bar:
        for user, n in enumerate(counts):
            if n == 0:
                continue
            gaps = np.where(rng.random(n) < 0.93, rng.integers(120, 400, n), rng.integers(1300, 5 * 86400, n))
            gaps[rng.random(n) < 0.01] = 0  # equal timestamps
            ts = START + int(rng.integers(0, 86400 * 30)) + np.cumsum(gaps)
            ts = START + (ts - START) % (END - START)
            ts.sort()
            track = (rng.zipf(1.15, n) - 1) % N_TRACKS
            artist = track // 11
            frame = pl.DataFrame({"ts": ts[::-1], "track": track[::-1], "artist": artist[::-1]})
            frame = frame.select(
                pl.lit(f"user_{user + 1:06d}").alias("user"),
                pl.from_epoch("ts", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("ts"),
                pl.when(pl.col("artist") % 10 != 0)
                .then(
                    pl.format(
                        "a{}-0000-4000-8000-000000000000", pl.col("artist").cast(pl.String).str.zfill(7)
                    )
                )
                .otherwise(pl.lit(""))
                .alias("artist_mbid"),
                pl.format('Artist {} "{}"', "artist", "artist").alias("artist_name"),
                pl.when(pl.col("track") % 4 != 0)
                .then(
                    pl.format("{}-0000-4000-8000-000000000000", pl.col("track").cast(pl.String).str.zfill(8))
                )
                .otherwise(pl.lit(""))
                .alias("track_mbid"),
                pl.format("Tråck {}", "track").alias("track_name"),
            )
            frame.write_csv(out, separator="\t", include_header=False, quote_style="never")
            bar.update(int(n))
    tmp.replace(path)


REFERENCE = r"""
import sys, polars as pl
plays = pl.read_csv(sys.argv[1], separator="\t", has_header=False, quote_char=None,
                    new_columns=["user", "ts", "amb", "artist", "tmb", "track"])
plays = plays.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ").dt.epoch("s"))
plays = plays.filter(pl.len().over("user") >= 1000)
plays = plays.filter(pl.len().over("artist", "track") >= 7)
plays = plays.sort("user", "ts")
plays = plays.with_columns(((pl.col("ts").diff().over("user").fill_null(10**9) > 1200).cum_sum()).alias("session"))
plays = plays.unique(["session", "artist", "track"], keep="first", maintain_order=True)
plays = plays.filter(pl.len().over("session") >= 10)
plays = plays.filter(pl.int_range(pl.len()).over("session") < 10)
plays = plays.filter(pl.col("session").n_unique().over("user") >= 50)
print(plays.height)
"""


PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def timed(command: list[str]) -> tuple[float, float, str]:
    """Run a command in its own wrapper process; return (wall seconds, its peak RSS in GB, stderr)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{proc.stderr[-2000:]}")
    peak_kb = int(re.findall(r"^peak_kb (\d+)$", proc.stderr, flags=re.M)[-1])
    return wall, peak_kb / 1024 / 1024, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=FULL_LINES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mmbench-full"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.work / f"userid-timestamp-artid-artname-traid-traname-{args.lines}.tsv"
    if not raw.exists():
        write_synthetic(raw, args.lines)
    print(f"input: {raw} ({raw.stat().st_size / 1e9:.2f} GB, {args.lines:,} lines)")
    mmbench = str(Path(sys.executable).with_name("mmbench"))
    ours, ref = [], []
    for i in range(args.repeat):
        out = args.work / "out"
        shutil.rmtree(out, ignore_errors=True)
        # No text config: the reference does no enrichment, and embedding 383,670 track names
        # would be most of a CPU build (docs/baselines.md, "At full size").
        wall, peak, log = timed(
            [mmbench, "build", "--raw", str(raw), "--out", str(out), "--text-encoder", ""]
        )
        stages = dict(re.findall(r"^(\w+): ([\d.]+) s$", log, flags=re.M))
        core = sum(float(v) for k, v in stages.items() if k != "publish")
        ours.append((wall, core, peak))
        print(
            f"run {i + 1}: mmbench build {wall:.1f} s wall (core stages {core:.1f} s, publish {stages.get('publish')} s), "
            f"peak RSS {peak:.2f} GB; stages {stages}"
        )
        wall, peak, _ = timed([sys.executable, "-c", REFERENCE, str(raw)])
        ref.append((wall, peak))
        print(f"run {i + 1}: straightforward polars reference {wall:.1f} s wall, peak RSS {peak:.2f} GB")
    med = [statistics.median(x) for x in zip(*ours, strict=True)]
    med_ref = [statistics.median(x) for x in zip(*ref, strict=True)]
    print(
        f"median over {args.repeat}: mmbench build {med[0]:.1f} s wall, core stages (ingest..instances) {med[1]:.1f} s, "
        f"peak {med[2]:.2f} GB | reference {med_ref[0]:.1f} s, peak {med_ref[1]:.2f} GB | "
        f"wall ratio {med[0] / med_ref[0]:.2f}, memory ratio {med[2] / med_ref[1]:.2f}"
    )


if __name__ == "__main__":
    main()
