import hashlib

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from mmbench.builders.identify import identify, track_id_for, track_ids_for
from mmbench.tracks import normalize_name


def test_normalization_nfkc_casefold_whitespace():
    assert normalize_name("  Björk ") == "björk"
    assert normalize_name("JÓGA") == normalize_name("Jóga") == "jóga"
    assert normalize_name("Ｓｏｎｇ\u3000A") == "song a"  # full-width letters and space (NFKC)
    assert normalize_name("Straße") == normalize_name("STRASSE")  # casefold, not lower
    assert normalize_name("a \t b\n c") == "a b c"


def test_track_id_is_sha1_of_the_normalized_pair():
    expected = "t" + hashlib.sha1("björk\x1fjóga".encode()).hexdigest()[:16]
    assert track_id_for("Björk", "JÓGA") == track_id_for(" björk", "Jóga") == expected
    assert track_id_for("a b", "c") != track_id_for("a", "b c")
    # Pinned: a change of this value breaks every published id.
    assert (
        track_id_for('The "Quoted" Band', "Song A")
        == "t" + hashlib.sha1(b'the "quoted" band\x1fsong a').hexdigest()[:16]
    )


def test_identify_merges_spellings_and_keeps_mbids():
    pairs = pl.DataFrame(
        {
            "pair": [0, 1, 1, 2],
            "artist_mbid": [None, "amb", "amb", None],
            "track_mbid": [None, "m1", "m2", None],
            "n": [5, 2, 1, 1],
            "artist_name": ["Björk", "björk", "björk", "Other"],
            "track_name": ["Jóga", "JÓGA", "JÓGA", "Song"],
        },
        schema_overrides={"pair": pl.UInt32, "n": pl.UInt32},
    )
    plays = pl.DataFrame(
        {"line": [1, 2, 3], "user": [0, 0, 0], "timestamp": [1, 2, 3], "pair": [0, 1, 2]},
        schema_overrides={"pair": pl.UInt32, "line": pl.UInt32, "user": pl.UInt32},
    )
    out, tracks, report = identify(plays, pairs)
    assert tracks.height == 2
    joga = tracks.filter(pl.col("track_id") == track_id_for("Björk", "Jóga")).row(0, named=True)
    assert (joga["artist_name"], joga["track_name"]) == ("Björk", "Jóga")  # the most played spelling
    assert joga["track_mbids"] == ["m1", "m2"] and joga["artist_mbid"] == "amb" and joga["n_plays"] == 8
    assert out["track"].to_list()[0] == out["track"].to_list()[1]
    assert report["raw_name_pairs"] == 3


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=12),
            st.text(alphabet=" \t aAbBzZ.-\"'ßÅå\u00a0\u3000ｆ", max_size=12),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_vectorized_ids_equal_the_reference(pairs):
    artists = pl.Series([a for a, _ in pairs], dtype=pl.String)
    tracks = pl.Series([t for _, t in pairs], dtype=pl.String)
    assert track_ids_for(artists, tracks).to_list() == [track_id_for(a, t) for a, t in pairs]


def test_vectorized_ids_on_printable_ascii_with_runs_of_spaces():
    names = ["  The  Band ", "ABC", "a b", "x~y", ""]
    ids = track_ids_for(pl.Series(names), pl.Series(list(reversed(names)))).to_list()
    assert ids == [track_id_for(a, t) for a, t in zip(names, reversed(names), strict=True)]
