"""The evaluator on the sample benchmark: formats, metrics against a reference, bad input."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import pop_predictions, run_cli
from mmbench.baselines.data import Benchmark, popularity_order
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator


@pytest.fixture(scope="module")
def evaluator(sample_build):
    return Evaluator("next-track", "test", sample_build)


@pytest.fixture(scope="module")
def pop_file(sample_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("pop") / "pop.jsonl"
    pop_predictions(sample_build, out)
    return out


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_cli_report_and_json(sample_build, pop_file, tmp_path):
    result = run_cli(
        "evaluate", str(pop_file), "--dataset", str(sample_build), "--json", str(tmp_path / "r.json")
    )
    assert result.returncode == 0, result.stderr
    assert "NDCG@10" in result.stdout and "segments" in result.stdout and "chance" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema_version"] == 2 and report["n_predicted"] == report["n_instances"]
    assert set(report["segments"]) >= {
        "target_heard_before",
        "target_popularity",
        "target_cold",
        "target_cold_new",
    }
    assert (
        report["metrics"]["ndcg@10"]["ci_low"]
        <= report["metrics"]["ndcg@10"]["value"]
        <= report["metrics"]["ndcg@10"]["ci_high"]
    )
    assert report["metrics"]["ndcg@10"]["value"] > 5 * report["chance"]["ndcg@10"]


def test_metrics_equal_an_independent_computation(evaluator, pop_file, sample_build):

    instances = pl.read_parquet(next((sample_build / "data" / "instances").glob("test-*.parquet")))
    target = dict(zip(instances["instance_id"], instances["target_track_id"], strict=True))
    rows = _lines(pop_file)
    report = evaluator.eval_file(pop_file, n_bootstrap=0, segments=False)
    assert report.warnings == []
    for k in (1, 10, 100):
        ndcg = np.mean(
            [
                1 / math.log2(r["predictions"].index(target[r["instance_id"]]) + 2)
                if target[r["instance_id"]] in r["predictions"][:k]
                else 0.0
                for r in rows
            ]
        )
        hits = np.mean([target[r["instance_id"]] in r["predictions"][:k] for r in rows])
        assert abs(report.metrics[f"ndcg@{k}"]["value"] - ndcg) < 1e-9
        assert abs(report.metrics[f"recall@{k}"]["value"] - hits) < 1e-9
    # pop leaves each session's prefix out, so its top 10 differ a little between instances.
    distinct = {t for r in rows for t in r["predictions"][:10]}
    assert report.coverage["coverage@10"] == pytest.approx(len(distinct) / report.n_catalog)
    assert len(distinct) > 10


def test_every_input_form_gives_the_same_scores(evaluator, pop_file, tmp_path):
    rows = _lines(pop_file)
    expected = evaluator.eval_file(pop_file, seed=3).metrics
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(pop_file.read_bytes()))
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    by_id = {r["instance_id"]: r["predictions"] for r in rows}
    array = np.array([by_id[i] for i in evaluator.instance_ids])
    forms = [gz, parquet]
    for form in forms:
        assert evaluator.eval_file(form, seed=3).metrics == expected
    for obj in (by_id, rows, pa.Table.from_pylist(rows), pd.DataFrame(rows), array):
        assert evaluator.eval(obj, seed=3).metrics == expected
    assert "JSON Lines" in evaluator.expected_input_format and "Report" in evaluator.expected_output_format


def test_allow_missing_scores_misses(evaluator, pop_file, tmp_path):
    rows = _lines(pop_file)
    half = _write(tmp_path / "half.jsonl", rows[: len(rows) // 2])
    with pytest.raises(MmbenchError, match="have no prediction .* --allow-missing"):
        evaluator.eval_file(half)
    full = evaluator.eval_file(pop_file, n_bootstrap=0, segments=False)
    part = evaluator.eval_file(half, allow_missing=True, n_bootstrap=0, segments=False)
    assert part.n_predicted == len(rows) // 2
    assert part.metrics["recall@100"]["value"] < full.metrics["recall@100"]["value"]


def test_coverage_of_rankings_that_differ_per_instance(evaluator, pop_file, tmp_path):
    rows = _lines(pop_file)
    rng = np.random.default_rng(3)
    catalogue = evaluator.track_ids
    for row in rows:  # each instance: its own random tracks, of its own length
        row["predictions"] = [
            catalogue[i] for i in rng.choice(len(catalogue), int(rng.integers(1, 30)), replace=False)
        ]
    report = evaluator.eval_file(_write(tmp_path / "varied.jsonl", rows), n_bootstrap=0, segments=False)
    for k in (1, 5, 10, 20):
        seen = {t for row in rows for t in row["predictions"][:k]}
        assert report.coverage[f"coverage@{k}"] == pytest.approx(len(seen) / len(catalogue))
    assert report.coverage["coverage@1"] < report.coverage["coverage@5"] < report.coverage["coverage@20"]


def test_paper_sampled_ranks_candidates(sample_build, tmp_path):
    out = tmp_path / "paper.jsonl"
    pop_predictions(sample_build, out, task="paper-sampled")
    result = run_cli("evaluate", str(out), "--dataset", str(sample_build), "--task", "paper-sampled")
    assert result.returncode == 0, result.stderr
    assert "warning: paper-sampled:" in result.stdout.replace("\n", " ")
    evaluator = Evaluator("paper-sampled", "test", sample_build)
    report = evaluator.eval_file(out, n_bootstrap=0, segments=False)
    assert report.chance["recall@10"] == pytest.approx(10 / 200)
    # The share of targets heard before, computed here from the sessions by a join.
    sessions = pl.concat(
        [pl.read_parquet(p) for p in (sample_build / "data" / "sessions").glob("*.parquet")]
    ).select("session_id", "user_id", "start_time", "track_ids")
    instances = pl.read_parquet(next((sample_build / "data" / "instances").glob("test-*.parquet")))
    paper = instances.filter(pl.col("task") == "paper-sampled").join(
        sessions.select("session_id", pl.col("start_time").alias("start")), on="session_id"
    )
    heard = (
        paper.join(sessions.explode("track_ids"), on="user_id")
        .filter((pl.col("start_time") < pl.col("start")) & (pl.col("track_ids") == pl.col("target_track_id")))
        .select(pl.col("instance_id").n_unique())
        .item()
    )
    assert 0 < heard < paper.height
    assert f"{heard:,} of {paper.height:,} targets" in report.warnings[0]
    rows = _lines(out)
    candidates = set(
        evaluator.track_ids[c]
        for c in evaluator.expected.candidates[evaluator.expected.index[rows[0]["instance_id"]]]
    )
    outsider = next(t for t in popularity_order(Benchmark(sample_build)) if t not in candidates)
    rows[0]["predictions"][5] = outsider
    bad = _write(tmp_path / "bad.jsonl", rows)
    result = run_cli("evaluate", str(bad), "--dataset", str(sample_build), "--task", "paper-sampled")
    assert (
        result.returncode == 2
        and "line 1" in result.stderr
        and "not among this instance's candidates" in result.stderr
    )


def _bad_cases(rows, first_track):
    one = rows[0]
    iid = one["instance_id"]
    preds = one["predictions"]
    return {
        "invalid_json": ([json.dumps(one), "{not json"], 2, "not valid JSON"),
        "not_object": ([json.dumps(one), "[1, 2]"], 2, "expected a JSON object, got an array"),
        "missing_id": ([{"predictions": preds}], 1, "missing 'instance_id'"),
        "mistyped_id": (
            [{"instance_id": 5, "predictions": preds}],
            1,
            "'instance_id' must be a string, got a number",
        ),
        "missing_predictions": ([{"instance_id": iid}], 1, "missing 'predictions'"),
        "mistyped_predictions": (
            [{"instance_id": iid, "predictions": "t1"}],
            1,
            "must be a list of track ids, got a string",
        ),
        "empty_ranking": ([{"instance_id": iid, "predictions": []}], 1, "empty ranking"),
        "duplicate_instance": ([one, rows[1], one], 3, "duplicate instance: already given at line 1"),
        "unknown_instance": (
            [one, {"instance_id": "next-track/nobody:0", "predictions": preds}],
            2,
            "unknown instance",
        ),
        "unknown_track": (
            [{"instance_id": iid, "predictions": [*preds[:3], "t0000000000000000"]}],
            1,
            "prediction 4, 't0000000000000000', is not a track id",
        ),
        "non_string_track": (
            [{"instance_id": iid, "predictions": [preds[0], 7]}],
            1,
            "prediction 2 is a number",
        ),
        "duplicate_track": (
            [{"instance_id": iid, "predictions": [preds[0], preds[1], preds[0]]}],
            1,
            "appears twice in the ranking (positions 1 and 3)",
        ),
        "too_many": (
            [{"instance_id": iid, "predictions": [*preds, first_track]}],
            1,
            "101 predictions; at most 100",
        ),
        "blank_line": ([json.dumps(one), "", json.dumps(rows[1])], 2, "an empty line"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "invalid_json",
        "not_object",
        "missing_id",
        "mistyped_id",
        "missing_predictions",
        "mistyped_predictions",
        "empty_ranking",
        "duplicate_instance",
        "unknown_instance",
        "unknown_track",
        "non_string_track",
        "duplicate_track",
        "too_many",
        "blank_line",
    ],
)
def test_bad_input_names_the_line_and_exits_2(case, sample_build, pop_file, tmp_path):
    rows = _lines(pop_file)
    order = popularity_order(Benchmark(sample_build))
    extra = next(t for t in order if t not in rows[0]["predictions"])
    lines, line, message = _bad_cases(rows, extra)[case]
    path = _write(tmp_path / f"{case}.jsonl", lines)
    result = run_cli("evaluate", str(path), "--dataset", str(sample_build))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert f"{path}: line {line}" in result.stderr and message in result.stderr, result.stderr
    if case not in ("invalid_json", "not_object", "missing_id", "mistyped_id", "blank_line"):
        assert (
            repr(rows[0]["instance_id"] if case != "unknown_instance" else "next-track/nobody:0")
            in result.stderr
        )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file"),
        ("empty.jsonl", b"", "the file is empty"),
        ("broken.jsonl.gz", b"\x1f\x8b\x08\x00garbage", "cannot read"),
        ("folder", "dir", "is a folder"),
        ("nocol.parquet", "parquet", "missing column 'predictions'"),
    ],
)
def test_unreadable_files(name, content, message, sample_build, tmp_path):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content == "parquet":
        pq.write_table(pa.table({"instance_id": ["x"]}), path)
    elif content is not None:
        path.write_bytes(content)
    result = run_cli("evaluate", str(path), "--dataset", str(sample_build))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, (
        result.stderr
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_crash(evaluator, tmp_path, data):
    path = tmp_path / "random.jsonl"
    path.write_bytes(data)
    try:
        evaluator.eval_file(path, n_bootstrap=10, segments=False)
    except MmbenchError as exc:
        assert str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    objects=st.lists(
        json_values | st.fixed_dictionaries({"instance_id": json_values, "predictions": json_values}),
        max_size=5,
    )
)
def test_random_json_never_crashes(evaluator, tmp_path, objects):
    path = tmp_path / "random.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    try:
        evaluator.eval_file(path, n_bootstrap=10, segments=False)
    except MmbenchError as exc:
        assert str(exc)


def test_scanner_takes_plain_lines_and_agrees_with_the_exact_path(evaluator, pop_file, tmp_path):
    from mmbench.predictions import _jsonl_rows, _Tally
    from mmbench.scanner import line_starts, read_lines, take_lines

    rows = _lines(pop_file)
    rng = np.random.default_rng(0)
    for row in rows:  # vary the rankings so that ranks and coverage differ per instance
        rng.shuffle(row["predictions"])
        row["predictions"] = row["predictions"][: int(rng.integers(1, 101))]
    block = _write(tmp_path / "varied.jsonl", rows).read_bytes()
    buf = np.frombuffer(block, dtype=np.uint8)
    starts = line_starts(buf)
    assert starts.size == len(rows) + 1 and starts[-1] == buf.size
    tables = evaluator.expected.instance_table.table, evaluator.expected.track_table.table
    instance, codes = read_lines(buf, starts, 100, *tables)
    # Every line is of the plain form: the scanner takes them all, none goes to the exact path.
    assert (instance >= 0).all() and (codes[:, 0] == [len(r["predictions"]) for r in rows]).all()
    scanned = _Tally(evaluator.expected, "x", "line")
    state = scanned.ranks, scanned.line_of, scanned.first_position, scanned.top
    assert take_lines(0, 1, instance, codes, evaluator.expected.targets, *state) == len(rows)
    exact = _Tally(evaluator.expected, "x", "line")
    exact.rows(_jsonl_rows(block, 1, "x"))
    for name in ("ranks", "line_of", "first_position", "top"):
        assert np.array_equal(getattr(scanned, name), getattr(exact, name)), name
    assert scanned.ranks.any() and (scanned.ranks == 0).any()


_SPACE = st.sampled_from(["", " ", "  ", "\t", "\r", " \r\t "])


@st.composite
def _line(draw, ids, tracks):
    """A predictions line near the plain form: spacing, key order, extra or repeated keys,
    escapes, non-ASCII, unknown or repeated ids, lengths around the limits, a corrupted byte."""
    s = lambda: draw(_SPACE)  # noqa: E731
    iid = draw(
        st.sampled_from([json.dumps(draw(st.sampled_from(ids))), '"nope"', "3", "null", '"next\\u002d"'])
    )
    n = draw(st.sampled_from([0, 1, 2, 5, 99, 100, 101]))
    preds = [json.dumps(t) for t in draw(st.permutations(tracks))[:n]]
    if preds and draw(st.booleans()):
        k = draw(st.integers(0, len(preds) - 1))
        preds[k] = draw(
            st.sampled_from([preds[0], '"t0"', "7", '"\\u0074' + json.loads(preds[k])[1:] + '"', '"tä"'])
        )
    members = [
        f'"instance_id"{s()}:{s()}{iid}',
        f'"predictions"{s()}:{s()}[{s()}' + f"{s()},{s()}".join(preds) + f"{s()}]",
    ]
    members += draw(st.sampled_from([[], ['"score": 1.5'], ['"instance_id": "x"'], ['"predictions": []']]))
    members += draw(st.lists(_extra_member(), max_size=2))
    members = draw(st.permutations(members))
    line = s() + "{" + s() + f"{s()},{s()}".join(members) + s() + "}" + s()
    if draw(st.booleans()):
        k = draw(st.integers(0, len(line) - 1))
        line = (
            line[:k] + draw(st.sampled_from(['"', ",", "]", "}", "", " ", "\\", "\x00", "é"])) + line[k + 1 :]
        )
    return line


# Values where JSON parsers part ways or that are not JSON at all; a lone surrogate character is
# written as its (invalid) UTF-8 bytes.
_TRICKY = st.sampled_from(
    [
        '"\\ud800"',
        '"\ud800"',
        "1e400",
        "1e99",
        "-0.5E-7",
        "NaN",
        "Infinity",
        "01",
        "1.",
        "-",
        "[1,]",
        "{,}",
        '{"a" 1}',
        "tru",
        "nul",
        '"\\x"',
        '"\t"',
        "[" * 61 + "]" * 61,
        "[" * 60 + "]" * 60,
        "9" * 120,
        '"\\u00e9\\n"',
        '"\x7f"',
        "[[],{}]",
        '{"instance_id": "x"}',
    ]
)


@st.composite
def _extra_member(draw):
    """Another key with any JSON value (as json.dumps writes it, with or without its spaces and
    escapes), or a tricky one."""
    key = draw(st.sampled_from(["scores", "session_id", "é", "", "instance_ids", 'x"y']))
    if draw(st.booleans()):
        value = json.dumps(
            draw(json_values),
            ensure_ascii=draw(st.booleans()),
            separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])),
        )
    else:
        value = draw(_TRICKY)
    return f"{json.dumps(key)}: {value}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_scanner_and_exact_path_agree_on_any_line(evaluator, data):
    """The scanner never takes a line the exact path would refuse or read differently."""
    from mmbench.predictions import PredictionsError, _jsonl_rows, _Tally

    ids, tracks = evaluator.instance_ids[:3], evaluator.track_ids[:120]
    lines = data.draw(st.lists(_line(ids, tracks), min_size=1, max_size=3))
    block = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    outcomes = []
    for read in ("scan", "rows"):
        tally = _Tally(evaluator.expected, "f", "line")
        try:
            tally.scan(block, 1) if read == "scan" else tally.rows(_jsonl_rows(block, 1, "f"))
            outcomes.append((tally.ranks.tolist(), tally.line_of.tolist(), tally.first_position.tolist()))
        except PredictionsError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_scanner_reads_what_json_loads_reads(evaluator, data):
    """A line the scanner takes is valid JSON, and json.loads gives it the same instance and
    ranking (a repeated key counts with its last value)."""
    from mmbench.scanner import line_starts, read_lines

    ids, tracks = evaluator.instance_ids[:3], evaluator.track_ids[:120]
    line = data.draw(_line(ids, tracks))
    buf = np.frombuffer((line + "\n").encode("utf-8", "surrogatepass"), dtype=np.uint8)
    tables = evaluator.expected.instance_table.table, evaluator.expected.track_table.table
    instance, codes = read_lines(buf, line_starts(buf), 100, *tables)
    if instance[0] < 0:
        return
    obj = json.loads(buf.tobytes())
    assert obj["instance_id"] == evaluator.instance_ids[instance[0]]
    assert obj["predictions"] == [evaluator.track_ids[c] for c in codes[0, 1 : codes[0, 0] + 1]]


def test_segments_match_a_direct_computation(evaluator, sample_build):

    sessions = pl.concat([pl.read_parquet(p) for p in (sample_build / "data" / "sessions").glob("*.parquet")])
    by_user: dict[str, list] = {}
    for row in sessions.iter_rows(named=True):
        by_user.setdefault(row["user_id"], []).append(row)
    own = {row["session_id"]: row for rows in by_user.values() for row in rows}
    instances = pl.read_parquet(next((sample_build / "data" / "instances").glob("test-*.parquet")))
    expected = []
    for inst in instances.filter(pl.col("task") == "next-track").iter_rows(named=True):
        session = own[inst["session_id"]]
        earlier = any(
            inst["target_track_id"] in s["track_ids"]
            for s in by_user[inst["user_id"]]
            if s["start_time"] < session["start_time"]
        )
        expected.append(earlier or inst["target_track_id"] in session["track_ids"][: inst["position"]])
    segments = evaluator.segments()
    assert segments["target_heard_before"]["true"].tolist() == expected
    assert 0 < sum(expected) < len(expected)
    plays = pl.read_parquet(next((sample_build / "data" / "tracks").glob("*.parquet")))
    n_train = dict(zip(plays["track_id"], plays["n_plays_train"], strict=True))
    cold = [n_train[t] == 0 for t in instances.filter(pl.col("task") == "next-track")["target_track_id"]]
    assert segments["target_cold"]["true"].tolist() == cold
    # Cold and new to the user: no training play and no earlier play by the user.
    cold_new = [c and not h for c, h in zip(cold, expected, strict=True)]
    assert segments["target_cold_new"]["true"].tolist() == cold_new
    assert 0 < sum(cold_new) < sum(cold)  # on the sample, some cold targets were heard in later periods
    popularity = segments["target_popularity"]
    assert (popularity["head"].astype(int) + popularity["torso"] + popularity["tail"] == 1).all()
    # Thirds of the training plays, written out: the head ends at the track where the
    # cumulative share reaches 1/3, the torso where it reaches 2/3.
    counts = sorted(n_train.values(), reverse=True)
    total, running, cuts = sum(counts), 0, []
    for c in counts:
        running += c
        while len(cuts) < 2 and running / total >= (len(cuts) + 1) / 3:
            cuts.append(c)
    targets = instances.filter(pl.col("task") == "next-track")["target_track_id"]
    group = [
        "head" if n_train[t] >= cuts[0] else "torso" if n_train[t] >= cuts[1] else "tail" for t in targets
    ]
    for name in ("head", "torso", "tail"):
        assert popularity[name].tolist() == [g == name for g in group]
    assert len(set(group)) == 3
    for config in ("audio-mfcc", "lyrics-minilm", "mgphot"):
        covered = set(pl.read_parquet(next((sample_build / "data" / config).glob("*.parquet")))["track_id"])
        assert segments[f"target_has_{config}"]["true"].tolist() == [t in covered for t in targets]
