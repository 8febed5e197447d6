"""The id hash table of the compiled predictions scanner."""

import numpy as np
import pyarrow as pa
import pytest

from mmbench.scanner import IdTable


def test_id_table_finds_every_id_and_nothing_else():
    # Ids that differ only in the middle, or are prefixes of one another, must not be confused.
    ids = [f"next-track/user_{u:06d}:{s}:{p}" for u in range(300) for s in (5, 17) for p in range(1, 10)]
    ids += ["", "t", "t0", "t01", "é", "t0123456789abcdef"]
    table = IdTable(pa.chunked_array([ids[:1000], ids[1000:]]))
    assert len(table) == len(ids)
    assert np.array_equal(table.positions(pa.array(ids)), np.arange(len(ids)))
    absent = ["t012", "next-track/user_000300:5:1", "next-track/user_000001:5:10", " t0", "T0"]
    assert table.positions(pa.array(absent)).tolist() == [-1] * len(absent)
    assert table.find("t01") == ids.index("t01") and table.find("x") == -1
    assert IdTable(pa.array([], pa.string())).positions(pa.array(["a"])).tolist() == [-1]


def test_id_table_refuses_repeated_ids_and_nulls():
    with pytest.raises(ValueError, match="repeated id 'b'"):
        IdTable(pa.array(["a", "b", "c", "b"]))
    with pytest.raises(ValueError, match="nulls"):
        IdTable(pa.array(["a", None]))
