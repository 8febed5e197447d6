"""The published dataset's contract (DESIGN.md section 4): configs, splits and Arrow schemas."""

from __future__ import annotations

import json

import pyarrow as pa

HUB_ID = "mmbench/lastfm1k-mm"
# The code's repository: where the card, Croissant file and CITATION.cff point for the code,
# docs/protocol.md and CHANGELOG.md (published files link there, never to a relative path).
CODE_URL = "https://github.com/mmbench/mmbench"
TITLE = "LastFM-1K-MM: a benchmark for multimodal session-based music recommendation"
# The dataset's version: a new one, with its CHANGELOG.md entry, whenever what evaluation depends
# on changes (the fingerprint of the sample or of the official build).
DATASET_VERSION = "2.0.0"
DATASET_DATE = "2026-12-02"  # when this version was defined (CHANGELOG.md); Croissant's datePublished
TASKS = ("next-track", "paper-sampled")
MAX_PREDICTIONS = 100

UTC_SECONDS = pa.timestamp("s", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "sessions": pa.schema(
        [
            ("session_id", pa.string()),
            ("user_id", pa.string()),
            ("start_time", UTC_SECONDS),
            ("track_ids", pa.list_(pa.string())),
            ("timestamps", pa.list_(UTC_SECONDS)),
            ("listen_seconds", pa.list_(pa.float32())),
            ("completion_ratios", pa.list_(pa.float32())),
        ]
    ),
    "instances": pa.schema(
        [
            ("instance_id", pa.string()),
            ("task", pa.string()),
            ("user_id", pa.string()),
            ("session_id", pa.string()),
            ("position", pa.int32()),
            ("target_track_id", pa.string()),
            ("candidates", pa.list_(pa.string())),
            # Segment labels of the target (docs/protocol.md); builds add target_has_<config>.
            ("target_heard_before", pa.bool_()),
            ("target_popularity", pa.string()),
            ("target_cold", pa.bool_()),
            ("target_cold_new", pa.bool_()),
        ]
    ),
    "tracks": pa.schema(
        [
            ("track_id", pa.string()),
            ("artist_name", pa.string()),
            ("track_name", pa.string()),
            ("artist_mbid", pa.string()),
            ("track_mbids", pa.list_(pa.string())),
            ("duration_seconds", pa.float32()),
            ("n_plays_train", pa.int64()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("gender", pa.string()),
            ("age", pa.int32()),
            ("country", pa.string()),
            ("signup", pa.date32()),
            ("n_sessions_train", pa.int32()),
        ]
    ),
}


def embedding_schema(dim: int) -> pa.Schema:
    """Schema of an ``audio-<encoder>`` or ``lyrics-<encoder>`` config of dimension ``dim``."""
    return pa.schema([("track_id", pa.string()), ("embedding", pa.list_(pa.float32(), dim))])


def content_label(config: str) -> str:
    """The ``instances`` column that says whether an instance's target has the content config."""
    return f"target_has_{config}"


def labelled_configs(content: dict[str, dict]) -> list[str]:
    """The content configs of a build report's ``content`` that label the instances' targets
    (``target_has_<config>``), in name order: all but those whose ``labels_targets`` is false
    (a config that covers every track by construction, such as ``text-*``)."""
    return sorted(config for config, info in content.items() if info.get("labels_targets", True))


def instances_schema(content: list[str] | tuple[str, ...] = ()) -> pa.Schema:
    """The ``instances`` schema of a build with the given content configs: the contract's
    columns, then one boolean label per content config, in name order."""
    schema = SCHEMAS["instances"]
    for config in sorted(content):
        schema = schema.append(pa.field(content_label(config), pa.bool_()))
    return schema


def stored_schema(config: str, content: list[str] | tuple[str, ...] = ()) -> pa.Schema:
    """The schema a config has once written to parquet and read back (``content``: the build's
    content configs, which add labels to ``instances``).

    Parquet has no second time unit, so the contract's whole-second ``timestamp[s, UTC]``
    values are stored (and loaded by ``datasets``) as ``timestamp[ms, UTC]``.
    """

    def stored(t: pa.DataType) -> pa.DataType:
        if t == UTC_SECONDS:
            return pa.timestamp("ms", tz="UTC")
        if pa.types.is_list(t):
            return pa.list_(stored(t.value_type))
        return t

    schema = instances_schema(content) if config == "instances" else SCHEMAS[config]
    return pa.schema([(f.name, stored(f.type)) for f in schema])


# What each published column means (the card's table; docs/protocol.md has the definitions).
COLUMN_MEANINGS: dict[str, str] = {
    "sessions.session_id": "the session's id (`<user_id>:<start, Unix seconds>`)",
    "sessions.user_id": "the listener",
    "sessions.start_time": "the first play's time; the session belongs to the split of this time",
    "sessions.track_ids": "the session's tracks in play order (after the recipe's filters)",
    "sessions.timestamps": "each play's time",
    "sessions.listen_seconds": "seconds until the session's next play (null for its last play)",
    "sessions.completion_ratios": "listen_seconds / the track's duration, clipped to [0, 1] (null where either is unknown)",
    "instances.instance_id": "the instance's id (`<task>/<session_id>`), the key of a predictions file",
    "instances.task": "`next-track` or `paper-sampled`",
    "instances.user_id": "the listener",
    "instances.session_id": "the session the target is in",
    "instances.position": "the target's position in the session; the input is every earlier play of the user and the session's tracks before it",
    "instances.target_track_id": "the track to rank first",
    "instances.candidates": "`paper-sampled` only: the target and the sampled negatives to rank (null for `next-track`)",
    "instances.target_heard_before": "the user played the target before the session",
    "instances.target_popularity": "`head`, `torso` or `tail`: the target's training popularity band",
    "instances.target_cold": "the target has no training play",
    "instances.target_cold_new": "cold, and never played by the user before (only content can find it)",
    "tracks.track_id": "the track's id",
    "tracks.artist_name": "the most played spelling in the logs",
    "tracks.track_name": "the most played spelling in the logs",
    "tracks.artist_mbid": "the most played MusicBrainz artist id, when the logs give one",
    "tracks.track_mbids": "the MusicBrainz recording ids Last.fm gave for this track",
    "tracks.duration_seconds": "the duration from the durations manifest (null when unknown)",
    "tracks.n_plays_train": "plays in training sessions (0: a cold track)",
    "users.user_id": "the listener's pseudonymous id",
    "users.gender": "self-declared, may be null",
    "users.age": "self-declared, may be null",
    "users.country": "self-declared, may be null",
    "users.signup": "the Last.fm sign-up date, may be null",
    "users.n_sessions_train": "the user's training sessions",
    "track_id": "the track (a key of `tracks`)",
    "embedding": "the track's vector from the config's encoder",
    "genes": "the 58 MGPHot gene values in [0, 1] (order below)",
    "annotator": "the model that rated the genes",
    "target_has": "the target has a row in the config `{config}`",
}

SPLITS: dict[str, tuple[str, ...]] = {
    "sessions": ("train", "validation", "test"),
    "instances": ("validation", "test"),
    "tracks": ("catalog",),
    "users": ("catalog",),
}
DEFAULT_CONFIG = "sessions"


# The 58 genes of the MGPHot schema, in the reference order (`reference/mgphot_genes.tsv`):
# (name, category, what 0 means, what 5 means). The poles are this project's own wording,
# given to the annotator so that every scale has a direction.
MGPHOT_GENES: tuple[tuple[str, str, str, str], ...] = (
    ("Vocal Register", "vocals", "low, bass-like voice", "high, soprano-like voice"),
    ("Vocal Timbre Thin to Full", "vocals", "thin, light voice", "full, rich voice"),
    ("Vocal Breathiness", "vocals", "clear, no audible breath", "airy, breathy voice"),
    ("Vocal Smoothness", "vocals", "rough, uneven delivery", "smooth, polished delivery"),
    ("Vocal Grittiness", "vocals", "clean voice", "gritty, raspy voice"),
    ("Vocal Nasality", "vocals", "open, chest voice", "strongly nasal voice"),
    ("Vocal Accompaniment", "vocals", "a single voice", "rich backing vocals and harmonies"),
    ("Minor / Major Key Tonality", "harmony", "clearly minor key", "clearly major key"),
    ("Harmonic Sophistication", "harmony", "two or three simple chords", "complex, extended harmony"),
    ("Tempo", "rhythm", "very slow", "very fast"),
    ("Cut Time Feel", "rhythm", "no half-time or cut-time feel", "strong cut-time feel"),
    ("Triple Meter", "rhythm", "no triple meter", "clearly in 3/4 or 6/8"),
    ("Compound Meter", "rhythm", "simple meter", "clearly compound meter"),
    ("Odd Meter", "rhythm", "regular meter", "odd meters such as 5/4 or 7/8"),
    ("Swing Feel", "rhythm", "straight rhythm", "strong swing"),
    ("Shuffle Feel", "rhythm", "no shuffle", "strong shuffle"),
    ("Syncopation Low to High", "rhythm", "on the beat", "highly syncopated"),
    ("Backbeat", "rhythm", "no backbeat", "strong backbeat on 2 and 4"),
    ("Danceability", "rhythm", "not danceable", "made for dancing"),
    ("Drum Set", "instrumentation", "no drum kit", "drum kit throughout"),
    ("Drum Aggressiveness", "instrumentation", "soft, gentle drums", "hard-hitting, aggressive drums"),
    ("Synthetic Drums", "instrumentation", "acoustic drums or none", "drum machines, programmed beats"),
    ("Percussion", "instrumentation", "no auxiliary percussion", "prominent hand or auxiliary percussion"),
    ("Electric Guitar", "instrumentation", "no electric guitar", "electric guitar is central"),
    ("Electric Guitar Distortion", "instrumentation", "clean guitar tone", "heavily distorted guitar"),
    ("Acoustic Guitar", "instrumentation", "no acoustic guitar", "acoustic guitar is central"),
    ("String Ensemble", "instrumentation", "no strings", "prominent string section"),
    ("Horn Ensemble", "instrumentation", "no horns", "prominent horn section"),
    ("Piano", "instrumentation", "no piano", "piano is central"),
    ("Organ", "instrumentation", "no organ", "organ is central"),
    ("Rhodes", "instrumentation", "no electric piano", "Rhodes electric piano is central"),
    ("Synthesizer", "instrumentation", "no synthesizer", "synthesizers are central"),
    ("Synth Timbre", "instrumentation", "warm, analog-like synth sounds", "bright, digital synth sounds"),
    ("Bass Guitar", "instrumentation", "no bass guitar", "bass guitar is prominent"),
    ("Reed Instrument", "instrumentation", "no reeds", "saxophone, clarinet or other reeds are central"),
    ("Angry Lyrics", "lyrics", "no anger", "furious, aggressive lyrics"),
    ("Sad Lyrics", "lyrics", "no sadness", "deeply sad lyrics"),
    ("Happy/Joyful Lyrics", "lyrics", "no joy", "exuberantly happy lyrics"),
    ("Humorous Lyrics", "lyrics", "serious", "comic, funny lyrics"),
    ("Love/Romance Lyrics", "lyrics", "not about love", "entirely about love or romance"),
    ("Social/Political Lyrics", "lyrics", "personal themes", "social or political message"),
    ("Abstract Lyrics", "lyrics", "literal, concrete lyrics", "abstract, surreal imagery"),
    ("Explicit Lyrics", "lyrics", "clean language", "explicit language throughout"),
    ("Live Recording", "sonority", "studio recording", "live concert recording"),
    ("Audio Production", "sonority", "lo-fi, raw production", "polished, high-end production"),
    ("Aural Intensity", "sonority", "quiet, calm sound", "loud, dense, intense sound"),
    ("Acoustic Sonority", "sonority", "no acoustic sound", "entirely acoustic sound"),
    ("Electric Sonority", "sonority", "no electric instruments", "dominated by electric instruments"),
    ("Synthetic Sonority", "sonority", "no electronic sound", "entirely electronic sound"),
    ("Focus on Lead Vocal", "composition", "vocals in the background", "the lead vocal is the focus"),
    ("Focus on Lyrics", "composition", "words barely matter", "the words are the focus"),
    ("Focus on Melody", "composition", "little melodic interest", "a strong, memorable melody"),
    (
        "Focus on Vocal Accompaniment",
        "composition",
        "backing vocals unimportant",
        "backing vocals are a focus",
    ),
    ("Focus on Rhythmic Groove", "composition", "groove unimportant", "built around the groove"),
    ("Focus on Musical Arrangements", "composition", "bare arrangement", "elaborate arrangement"),
    ("Focus on Form", "composition", "loose structure", "carefully built song form"),
    ("Focus on Riffs", "composition", "no riffs", "built on repeated riffs"),
    ("Focus on Performance", "composition", "performance unremarkable", "virtuosic, expressive performance"),
)
MGPHOT_DIM = len(MGPHOT_GENES)


def mgphot_gene_list() -> list[dict[str, object]]:
    """The genes in the order of the ``genes`` vector: index, name, category and what the values
    0 and 1 mean (the rating scale's two poles)."""
    return [
        {"index": i, "name": name, "category": category, "0": low, "1": high}
        for i, (name, category, low, high) in enumerate(MGPHOT_GENES)
    ]


def mgphot_schema() -> pa.Schema:
    """Schema of the ``mgphot`` config: 58 gene values in [0, 1] and the annotator per row. The
    ``genes`` field's metadata names the genes (``mgphot_genes``: JSON, :func:`mgphot_gene_list`),
    so that the parquet files describe themselves."""
    described = {
        "description": "MGPHot gene values in [0, 1], in the order of mgphot_genes",
        "mgphot_genes": json.dumps(mgphot_gene_list(), ensure_ascii=False),
    }
    genes = pa.field("genes", pa.list_(pa.float32(), MGPHOT_DIM), metadata=described)
    return pa.schema([("track_id", pa.string()), genes, ("annotator", pa.string())])
