"""Time `mmbench evaluate` end to end against ranx and a bare rank computation, at 3 sizes.

    python benchmarks/evaluate_speed.py [--sizes 42000 200000 1000000] [--repeat 3] [--ranx-max 200000]

For each size N it writes (once, cached in --work) a dataset folder with N next-track test
instances over a 383,670-track catalogue (with the sessions the segment breakdown reads) and a
JSON Lines run of N x 100 predictions, then times, each in a fresh process and --repeat times:

* ``mmbench evaluate RUN --dataset DIR --json OUT``: reading the dataset and the file,
  validation, 1000 bootstrap resamples, segments, the printed report and the JSON;
* ranx (stdlib ``json`` parsing + ``ranx.evaluate`` of the same metrics), up to --ranx-max
  instances (measured here: it needs over 19 GB at 1M instances);
* a bare computation without validation (orjson per line, target rank with list.index, numpy
  means): the floor any evaluator in Python pays to read the file.

Up to --variants-max instances it also times ``mmbench evaluate`` on two other writings of the
same run: ``extra`` (each line carries the keys a user adds, ``"scores"``: 100 floats, and
``"session_id"``; the contract says they are ignored) and ``compact`` (``json.dumps`` without
its default spaces; the main run is written with them).

Prints wall times, peak RSS, medians and ratios. Requires the `bench` extra (ranx).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from mmbench.builders.publish import ROW_GROUP
from mmbench.schema import SCHEMAS
from mmbench.segments import popularity_group, popularity_thresholds

N_TRACKS = 383_670
KS = (1, 5, 10, 20, 50, 100)

PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)

RANX = r"""
import json, sys
from ranx import Qrels, Run, evaluate
qrels, run = {}, {}
targets = json.load(open(sys.argv[2]))
with open(sys.argv[1]) as f:
    for line in f:
        obj = json.loads(line)
        iid = obj["instance_id"]
        run[iid] = {t: 100.0 - i for i, t in enumerate(obj["predictions"])}
        qrels[iid] = {targets[iid]: 1}
metrics = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (1, 5, 10, 20, 50, 100)]
print(evaluate(Qrels(qrels), Run(run), metrics))
"""

BARE = r"""
import sys, json, orjson, numpy as np
targets = json.load(open(sys.argv[2]))
ranks = []
with open(sys.argv[1], "rb") as f:
    for line in f:
        obj = orjson.loads(line)
        preds = obj["predictions"]
        t = targets[obj["instance_id"]]
        ranks.append(preds.index(t) + 1 if t in preds else 0)
r = np.array(ranks)
for k in (1, 5, 10, 20, 50, 100):
    hit = (r >= 1) & (r <= k)
    print(k, hit.mean(), np.where(hit, 1 / np.log2(r + 1), 0).mean(), np.where(hit, 1 / np.maximum(r, 1), 0).mean())
"""


def write_dataset(folder: Path, n: int, seed: int = 0) -> dict[str, str]:
    """A minimal build folder: tracks, next-track test instances and their sessions, in row
    groups of the size `mmbench build` writes."""
    rng = np.random.default_rng(seed)
    track_ids = np.array([f"t{i:016x}" for i in range(N_TRACKS)])
    plays = np.maximum(0, (rng.pareto(1.1, N_TRACKS) * 5).astype(np.int64) - 1)
    n_users = max(n // 40, 10)
    users = np.array([f"user_{u:06d}" for u in range(n_users)])
    test_user = rng.integers(0, n_users, n)
    popular = np.argsort(-plays)[:20000]
    tracks = popular[rng.integers(0, popular.size, (n, 10))]
    target_plays = plays[tracks[:, -1]]
    start = 1_230_000_000 + 7 * rng.permutation(n)  # distinct, so session ids are unique
    session_ids = np.char.add(np.char.add(users[test_user], ":"), start.astype(str))
    data = folder / "data"
    tables = {
        ("tracks", "catalog"): pa.table(
            {
                "track_id": track_ids,
                "artist_name": track_ids,
                "track_name": track_ids,
                "artist_mbid": pa.nulls(N_TRACKS, pa.string()),
                "track_mbids": pa.array([[]] * N_TRACKS, pa.list_(pa.string())),
                "duration_seconds": pa.nulls(N_TRACKS, pa.float32()),
                "n_plays_train": plays,
            }
        ),
        ("instances", "test"): pa.table(
            {
                "instance_id": np.char.add("next-track/", session_ids),
                "task": ["next-track"] * n,
                "user_id": users[test_user],
                "session_id": session_ids,
                "position": np.full(n, 9, dtype=np.int32),
                "target_track_id": track_ids[tracks[:, -1]],
                "candidates": pa.nulls(n, pa.list_(pa.string())),
                "target_heard_before": (tracks[:, :-1] == tracks[:, -1:]).any(axis=1),
                "target_popularity": popularity_group(target_plays, popularity_thresholds(plays)),
                "target_cold": target_plays == 0,
                "target_cold_new": (target_plays == 0) & ~(tracks[:, :-1] == tracks[:, -1:]).any(axis=1),
            }
        ),
    }
    times = (start[:, None] + np.arange(10) * 200).astype("datetime64[s]")
    test_sessions = pa.table(
        {
            "session_id": session_ids,
            "user_id": users[test_user],
            "start_time": start.astype("datetime64[s]"),
            "track_ids": pa.array(list(track_ids[tracks])),
            "timestamps": pa.array(list(times)),
            "listen_seconds": pa.array([[200.0] * 10] * n, pa.list_(pa.float32())),
            "completion_ratios": pa.array([[1.0] * 10] * n, pa.list_(pa.float32())),
        }
    )
    n_train = n_users * 20
    train_user = rng.integers(0, n_users, n_train)
    train_tracks = popular[rng.integers(0, popular.size, (n_train, 10))]
    train_start = 1_100_000_000 + 7 * rng.permutation(n_train)
    train_times = (train_start[:, None] + np.arange(10) * 200).astype("datetime64[s]")
    train = pa.table(
        {
            "session_id": np.char.add(np.char.add(users[train_user], ":"), train_start.astype(str)),
            "user_id": users[train_user],
            "start_time": train_start.astype("datetime64[s]"),
            "track_ids": pa.array(list(track_ids[train_tracks])),
            "timestamps": pa.array(list(train_times)),
            "listen_seconds": pa.array([[200.0] * 10] * n_train, pa.list_(pa.float32())),
            "completion_ratios": pa.array([[1.0] * 10] * n_train, pa.list_(pa.float32())),
        }
    )
    tables[("sessions", "test")] = test_sessions
    tables[("sessions", "train")] = train
    tables[("sessions", "validation")] = train.slice(0, 1)
    # A build writes each split's instances sorted by task and id, and has both splits.
    tables[("instances", "test")] = tables[("instances", "test")].sort_by("instance_id")
    tables[("instances", "validation")] = tables[("instances", "test")].slice(0, 1)
    for (config, split), table in tables.items():
        (data / config).mkdir(parents=True, exist_ok=True)
        table = table.select(SCHEMAS[config].names).cast(SCHEMAS[config])
        pq.write_table(table, data / config / f"{split}-00000-of-00001.parquet", row_group_size=ROW_GROUP)
    (folder / "README.md").write_text("Synthetic evaluation benchmark folder.\n")
    targets = dict(
        zip(
            tables[("instances", "test")]["instance_id"].to_pylist(),
            tables[("instances", "test")]["target_track_id"].to_pylist(),
            strict=True,
        )
    )
    return targets


def write_run(path: Path, targets: dict[str, str], seed: int = 1) -> None:
    """N lines of 100 distinct catalogue ids; the target is in the list for 40% of instances."""
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for iid, target in tqdm(targets.items(), desc=f"run {path.name}", unit="line"):
            ids = rng.choice(N_TRACKS, 100, replace=False)
            preds = [f"t{i:016x}" for i in ids]
            if target not in preds and rng.random() < 0.4:
                preds[int(rng.integers(0, 100))] = target
            f.write(json.dumps({"instance_id": iid, "predictions": preds}) + "\n")
    tmp.replace(path)


def write_variant(run: Path, path: Path, kind: str) -> None:
    """The run rewritten: ``extra`` adds scores and the session id to each line, ``compact``
    drops json.dumps's spaces."""
    tmp = path.with_name(path.name + ".tmp")
    with run.open() as lines, tmp.open("w") as f:
        for line in tqdm(lines, desc=f"run {path.name}", unit="line"):
            obj = json.loads(line)
            if kind == "extra":
                obj["scores"] = [round(10.0 - 0.0731 * i, 4) for i in range(len(obj["predictions"]))]
                obj["session_id"] = obj["instance_id"].removeprefix("next-track/")
                f.write(json.dumps(obj) + "\n")
            else:
                f.write(json.dumps(obj, separators=(",", ":")) + "\n")
    tmp.replace(path)


def timed(command: list[str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    found = re.findall(r"^peak_kb (\d+)$", proc.stderr, flags=re.M)
    if proc.returncode != 0:
        return float("nan"), float(found[-1]) / 2**20 if found else float("nan")
    return wall, int(found[-1]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[42_000, 200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ranx-max", type=int, default=200_000)
    parser.add_argument("--variants-max", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mmbench-eval"))
    args = parser.parse_args()
    mmbench = str(Path(sys.executable).with_name("mmbench"))
    for n in args.sizes:
        folder = args.work / f"n{n}"
        run = folder / "run.jsonl"
        targets_path = folder / "targets.json"
        if not run.exists():
            targets = write_dataset(folder, n)
            targets_path.write_text(json.dumps(targets))
            write_run(run, targets)
        print(f"N = {n:,}: run {run.stat().st_size / 1e9:.2f} GB")
        runs = {"mmbench": run}
        if n <= args.variants_max:
            for kind in ("extra", "compact"):
                runs[f"mmbench {kind}"] = folder / f"run-{kind}.jsonl"
                if not runs[f"mmbench {kind}"].exists():
                    write_variant(run, runs[f"mmbench {kind}"], kind)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs} | {"ranx": [], "bare": []}
        for _ in range(args.repeat):
            for name, path in runs.items():
                command = [mmbench, "evaluate", str(path), "--dataset", str(folder)]
                results[name].append(timed([*command, "--json", str(folder / "report.json")]))
            results["bare"].append(timed([sys.executable, "-c", BARE, str(run), str(targets_path)]))
            if n <= args.ranx_max:
                results["ranx"].append(timed([sys.executable, "-c", RANX, str(run), str(targets_path)]))
        med = {k: (statistics.median(w for w, _ in v), max(m for _, m in v)) for k, v in results.items() if v}
        for name, (wall, peak) in med.items():
            walls = ", ".join(f"{w:.1f}" for w, _ in results[name])
            print(f"  {name:16s} median {wall:6.1f} s (runs {walls}), peak RSS {peak:.2f} GB")
        if "ranx" in med:
            print(f"  ranx / mmbench = {med['ranx'][0] / med['mmbench'][0]:.1f}x")
        else:
            print(
                f"  ranx skipped above {args.ranx_max:,} instances (it needs more memory than this machine has)"
            )
        print(f"  mmbench / bare = {med['mmbench'][0] / med['bare'][0]:.2f}x")
        for kind in ("extra", "compact"):
            if f"mmbench {kind}" in med:
                print(f"  mmbench {kind} / mmbench = {med[f'mmbench {kind}'][0] / med['mmbench'][0]:.2f}x")


if __name__ == "__main__":
    main()
