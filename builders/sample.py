"""The embedded synthetic sample: a small raw set in the exact LastFM-1K formats, with content.

Everything is drawn from one seed, so the same seed writes the same bytes. Planted structure:
each track has a latent style that shapes its sound (tempo, register, timbre, noise), its lyric
vocabulary, its duration and which tracks follow it in sessions. Users prefer a few styles;
within a session the style follows a sticky Markov chain; tracks off the user's taste are
skipped early (low completion). Tracks are released over time, and a new release is played
most in the weeks after it comes out (a boost that fades with ``novelty_days``), so the test
period has many plays of tracks never played in training, reachable only through their content.

Quirks of the real file are planted too: newest-first order per user, plays with equal
timestamps, empty MBIDs, ``"`` and non-ASCII characters in names, spelling variants of one
song, songs with two track MBIDs, malformed lines, and a profile file with a ``#`` header and
empty fields.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tarfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from mmbench.builders.ingest import ARCHIVE_NAME, PLAYS_NAME, PROFILE_NAME
from mmbench.files import atomic_path, write_atomic
from mmbench.progress import progress_bar

THEMES = [
    (
        "love",
        [
            "heart",
            "kiss",
            "darling",
            "forever",
            "hold",
            "tender",
            "yours",
            "desire",
            "embrace",
            "devotion",
            "sweet",
            "lover",
        ],
    ),
    (
        "anger",
        [
            "rage",
            "burn",
            "fight",
            "scream",
            "broken",
            "fist",
            "fury",
            "hate",
            "destroy",
            "war",
            "blood",
            "enemy",
        ],
    ),
    (
        "party",
        [
            "dance",
            "night",
            "club",
            "floor",
            "lights",
            "party",
            "move",
            "groove",
            "weekend",
            "drink",
            "shake",
            "beat",
        ],
    ),
    (
        "sorrow",
        [
            "tears",
            "alone",
            "rain",
            "grey",
            "cry",
            "lost",
            "goodbye",
            "empty",
            "cold",
            "grave",
            "sorrow",
            "fade",
        ],
    ),
    (
        "nature",
        [
            "river",
            "mountain",
            "forest",
            "sky",
            "wind",
            "ocean",
            "sun",
            "tree",
            "valley",
            "stone",
            "meadow",
            "bird",
        ],
    ),
    (
        "road",
        [
            "highway",
            "wheels",
            "engine",
            "miles",
            "truck",
            "dust",
            "town",
            "road",
            "drive",
            "border",
            "motel",
            "ride",
        ],
    ),
    (
        "city",
        [
            "street",
            "concrete",
            "subway",
            "neon",
            "tower",
            "traffic",
            "corner",
            "block",
            "siren",
            "alley",
            "rooftop",
            "crowd",
        ],
    ),
    (
        "space",
        [
            "stars",
            "orbit",
            "planet",
            "galaxy",
            "moon",
            "rocket",
            "comet",
            "cosmos",
            "gravity",
            "signal",
            "void",
            "light",
        ],
    ),
    (
        "faith",
        [
            "pray",
            "heaven",
            "soul",
            "grace",
            "angel",
            "holy",
            "light",
            "church",
            "spirit",
            "mercy",
            "glory",
            "hymn",
        ],
    ),
    (
        "money",
        [
            "cash",
            "gold",
            "diamond",
            "rich",
            "hustle",
            "chain",
            "bank",
            "deal",
            "cars",
            "fame",
            "boss",
            "money",
        ],
    ),
    (
        "youth",
        [
            "school",
            "summer",
            "friends",
            "young",
            "crazy",
            "wild",
            "radio",
            "skate",
            "forever",
            "teen",
            "bedroom",
            "mall",
        ],
    ),
    (
        "sea",
        [
            "ship",
            "sailor",
            "harbor",
            "wave",
            "storm",
            "anchor",
            "tide",
            "island",
            "shore",
            "captain",
            "salt",
            "deep",
        ],
    ),
]
FILLER = [
    "the",
    "a",
    "and",
    "i",
    "you",
    "we",
    "my",
    "your",
    "in",
    "on",
    "of",
    "to",
    "with",
    "all",
    "now",
    "never",
    "always",
    "again",
    "tonight",
]
SYLLABLES = [
    "ka",
    "ri",
    "mo",
    "tha",
    "lu",
    "ne",
    "sa",
    "vo",
    "ber",
    "gen",
    "dal",
    "fin",
    "ro",
    "ze",
    "mi",
    "tor",
    "an",
    "el",
    "ul",
    "ix",
]
SPICE = ["Ä", "é", "ñ", "ø", "ü", "ß", "Ж", "и", "日本", "東京", "ç", "Ω"]
COUNTRIES = [
    "United States",
    "United Kingdom",
    "Germany",
    "Japan",
    "Brazil",
    "Sweden",
    "Poland",
    "Canada",
    "Finland",
    "Spain",
]


# Bumped whenever the generator's output changes, so that a build regenerates its sample.
SAMPLE_VERSION = 3


@dataclass(frozen=True)
class SampleConfig:
    """Size and seed of the synthetic sample (the defaults build in about a minute)."""

    seed: int = 20260101
    n_users: int = 150
    n_tracks: int = 1500
    n_styles: int = 12
    sessions_per_user: int = 70
    clip_seconds: float = 3.0
    sample_rate: int = 16000
    audio_coverage: float = 0.85
    lyrics_coverage: float = 0.75
    start: str = "2005-02-14"
    end: str = "2009-06-19"
    # A track released after the start is this many times more likely to be picked on its release
    # day, the boost fading exponentially with a time constant of novelty_days.
    novelty: float = 15.0
    novelty_days: float = 60.0


def _name(rng: np.random.Generator, words: int) -> str:
    return " ".join(
        "".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))).capitalize() for _ in range(words)
    )


def _mbid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4))


def _styles(cfg: SampleConfig, rng: np.random.Generator) -> list[dict]:
    styles = []
    for s in range(cfg.n_styles):
        harmonics = rng.dirichlet(np.full(6, 0.6))
        styles.append(
            {
                "style": s,
                "theme": THEMES[s % len(THEMES)][0],
                "tempo": float(rng.uniform(60, 180)),
                "pitch": float(rng.uniform(38, 82)),
                "harmonics": harmonics.tolist(),
                "noise": float(rng.uniform(0.0, 0.5)),
                "scale": sorted(rng.choice(12, size=5, replace=False).tolist()),
                "duration_mean": float(rng.uniform(150, 330)),
            }
        )
    return styles


def _tracks(cfg: SampleConfig, rng: np.random.Generator, styles: list[dict], t0: int, t1: int) -> list[dict]:
    n_artists = max(cfg.n_tracks // 8, cfg.n_styles)
    artists = []
    for a in range(n_artists):
        name = _name(rng, int(rng.integers(1, 3)))
        if a % 17 == 3:
            name = f'The "{name}" Band'
        elif a % 11 == 5:
            name = name + " " + str(rng.choice(SPICE))
        artists.append(
            {"name": name, "style": a % cfg.n_styles, "mbid": _mbid(rng) if rng.random() < 0.9 else None}
        )
    tracks = []
    for i in range(cfg.n_tracks):
        artist = artists[int(rng.integers(n_artists))]
        style = artist["style"] if rng.random() < 0.9 else int(rng.integers(cfg.n_styles))
        theme_words = THEMES[style % len(THEMES)][1]
        title = f"{str(rng.choice(theme_words)).capitalize()} {_name(rng, 1)}"
        if i % 23 == 7:
            title = f'{title} "Live"'
        elif i % 19 == 4:
            title = f"{title} {rng.choice(SPICE)}"
        mbids = [] if rng.random() < 0.28 else [_mbid(rng)]
        if mbids and rng.random() < 0.04:
            mbids.append(_mbid(rng))
        released = t0 if rng.random() < 0.45 else int(rng.integers(t0, t1 - 86400 * 14))
        duration = float(np.clip(rng.normal(styles[style]["duration_mean"], 45), 60, 600))
        tracks.append(
            {
                "index": i,
                "artist_name": artist["name"],
                "artist_mbid": artist["mbid"],
                "track_name": title,
                "track_mbids": mbids,
                "style": style,
                "released": released,
                "duration_seconds": round(duration, 1),
                "variant": f"{title.upper()}" if i % 29 == 11 else None,
            }
        )
    # Several artists share titles in the real data; make a few collide on purpose.
    for i in range(5, cfg.n_tracks, 97):
        tracks[i]["track_name"] = tracks[i - 1]["track_name"]
    return tracks


def _popularity(cfg: SampleConfig, rng: np.random.Generator, tracks: list[dict]) -> tuple[dict, dict]:
    """Each style's tracks and their Zipf popularity, in a random order of the style's tracks.

    A track's appeal (1 = its style's most popular, 0 = the least) is also audible and readable:
    its audio has a bright hook and its lyrics a refrain in proportion, so content can tell how
    popular a track will be, including one released after the training period.
    """
    by_style: dict[int, np.ndarray] = {}
    for s in range(cfg.n_styles):
        by_style[s] = np.array([t["index"] for t in tracks if t["style"] == s])
    popularity = {}
    for s, members in by_style.items():
        ranks = rng.permutation(len(members))
        popularity[s] = 1.0 / (ranks + 1) ** 1.1
        for track, rank in zip(members, ranks, strict=True):
            tracks[track]["appeal"] = 1.0 - rank / max(1, len(members) - 1)
    return by_style, popularity


def _plays(
    cfg: SampleConfig, rng: np.random.Generator, tracks: list[dict], t0: int, t1: int
) -> tuple[list[list[tuple]], list[dict]]:
    """Per user, the plays as (timestamp, track index, name variant used, mbid used), in time order."""
    by_style, popularity = _popularity(cfg, rng, tracks)
    catalog = {
        "tracks": tracks,
        "by_style": by_style,
        "popularity": popularity,
        "released": np.array([t["released"] for t in tracks]),
        "durations": np.array([t["duration_seconds"] for t in tracks]),
    }
    users, per_user = [], []
    for u in range(cfg.n_users):
        taste = rng.choice(cfg.n_styles, size=int(rng.integers(2, 4)), replace=False)
        begin = int(rng.integers(t0, t0 + (t1 - t0) // 3))
        end = int(rng.integers(t1 - (t1 - t0) // 20, t1))
        per_user.append(_user_plays(cfg, rng, catalog, taste, begin, end, t0))
        users.append(_profile(rng, u, begin, taste))
    return per_user, users


def _user_plays(
    cfg: SampleConfig,
    rng: np.random.Generator,
    catalog: dict,
    taste: np.ndarray,
    begin: int,
    end: int,
    t0: int,
) -> list[tuple]:
    """One user's plays from ``begin`` to ``end``: sessions that mostly stay in the user's
    styles, re-listens, new releases boosted, early skips of tracks off the user's taste."""
    tracks, by_style, popularity = catalog["tracks"], catalog["by_style"], catalog["popularity"]
    released, durations = catalog["released"], catalog["durations"]
    n_sessions = int(rng.poisson(cfg.sessions_per_user))
    mean_gap = (end - begin) / max(n_sessions, 1)
    heard: dict[int, list[int]] = {}
    plays: list[tuple] = []
    t = begin
    while True:
        t += int(1300 + rng.exponential(mean_gap * 0.8))
        if t >= end:
            return plays
        style = int(rng.choice(taste)) if rng.random() < 0.8 else int(rng.integers(cfg.n_styles))
        for _ in range(1 + int(rng.geometric(1 / 14))):
            if rng.random() > 0.75:
                style = int(rng.choice(taste)) if rng.random() < 0.6 else int(rng.integers(cfg.n_styles))
            pool = by_style[style]
            ok = released[pool] <= t
            if not ok.any():
                continue
            own = heard.get(style)
            if own and rng.random() < 0.25:
                track = int(rng.choice(own))
            else:
                age = (t - released[pool]) / (86400 * cfg.novelty_days)
                boost = 1 + cfg.novelty * np.exp(-age) * (released[pool] > t0)
                weights = popularity[style] * ok * boost
                track = int(rng.choice(pool, p=weights / weights.sum()))
            heard.setdefault(style, []).append(track)
            info = tracks[track]
            variant = info["variant"] is not None and rng.random() < 0.2
            mbids = info["track_mbids"]
            mbid = mbids[int(rng.integers(len(mbids)))] if mbids else None
            plays.append((t, track, variant, mbid))
            ratio = rng.beta(6, 1.2) if style in taste else rng.beta(1.2, 5)
            step = int(round(ratio * durations[track]))
            if rng.random() < 0.01:
                step = 0  # a duplicate scrobble in the same second
            elif rng.random() < 0.03:
                step += int(rng.integers(300, 1100))  # a pause that stays within the session
            t += step


def _profile(rng: np.random.Generator, u: int, begin: int, taste: np.ndarray) -> dict:
    """One user's profile row (empty fields as LastFM-1K has them) and taste."""
    gender = ["m", "f", ""][int(rng.integers(3))]
    age = "" if rng.random() < 0.3 else str(int(rng.integers(16, 60)))
    country = "" if rng.random() < 0.1 else str(rng.choice(COUNTRIES))
    signup = (
        ""
        if rng.random() < 0.1
        else datetime.fromtimestamp(begin - int(rng.integers(0, 4e7)), UTC).strftime("%b %d, %Y")
    )
    return {
        "user_id": f"user_{u + 1:06d}",
        "gender": gender,
        "age": age,
        "country": country,
        "signup": signup,
        "taste": sorted(int(s) for s in taste),
    }


def _plays_tsv(
    per_user: list[list[tuple]], users: list[dict], tracks: list[dict], rng: np.random.Generator
) -> bytes:
    lines: list[str] = []
    for plays, user in zip(per_user, users, strict=True):
        for t, track, variant, mbid in reversed(plays):  # the raw file runs newest first
            info = tracks[track]
            stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            name = info["variant"] if variant else info["track_name"]
            lines.append(
                "\t".join(
                    [user["user_id"], stamp, info["artist_mbid"] or "", info["artist_name"], mbid or "", name]
                )
            )
    malformed = [
        "user_000002\t2008-01-01T10:00:00Z\t\tMissing Track Field\t",
        "user_000003\t2008-01-01T10:00:00Z\t\tToo\tMany\tFields\tHere",
        "user_000004\t2008-13-45T99:00:00Z\t\tBad Time\t\tNever",
        "user_000005\t1210000000\t\tEpoch Time\t\tNot Allowed",
        "\t2008-01-01T10:00:00Z\t\tNo User\t\tAt All",
    ]
    positions = sorted(rng.choice(len(lines), size=len(malformed), replace=False).tolist(), reverse=True)
    for pos, bad in zip(positions, malformed, strict=True):
        lines.insert(pos, bad)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    cut = data.index(b"\n", len(data) // 2) + 1
    return (
        data[:cut]
        + b"user_000006\t2008-01-01T10:00:00Z\t\tBroken \xff\xfe Bytes\t\tLatin-1 \xe9\n"
        + data[cut:]
    )


def _profile_tsv(users: list[dict]) -> bytes:
    rows = ["#id\tgender\tage\tcountry\tregistered"]
    rows += ["\t".join([u["user_id"], u["gender"], u["age"], u["country"], u["signup"]]) for u in users]
    return ("\n".join(rows) + "\n").encode("utf-8")


def _write_archive(path: Path, members: dict[str, bytes]) -> None:
    """A tar.gz with fixed mtimes and owners, so that its bytes depend on the content only."""
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1241481600, 0o644
            tar.addfile(info, io.BytesIO(data))


def synth_waveform(
    style: dict, cfg: SampleConfig, rng: np.random.Generator, appeal: float = 0.0
) -> np.ndarray:
    """A clip whose tempo, register, timbre and noise follow the style, with per-track jitter,
    and a bright hook (a 2.8 kHz tone on the beat) as loud as the track's appeal."""
    sr, n = cfg.sample_rate, int(cfg.clip_seconds * cfg.sample_rate)
    t = np.arange(n) / sr
    beat = 60.0 / (style["tempo"] * rng.uniform(0.95, 1.05))
    steps = (t / beat).astype(int)
    notes = rng.choice(style["scale"], size=steps[-1] + 1) + 12 * rng.integers(0, 2, size=steps[-1] + 1)
    freq = 440.0 * 2 ** ((style["pitch"] + rng.uniform(-2, 2) + notes[steps] - 69) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    tone = sum(w * np.sin((h + 1) * phase) for h, w in enumerate(style["harmonics"]))
    envelope = np.exp(-3.0 * (t % beat) / beat)
    noise = rng.standard_normal(n) * style["noise"]
    hook = appeal * 0.8 * np.sin(2 * np.pi * 2800.0 * t) * envelope
    wave = tone * envelope + noise + hook
    return (0.9 * wave / np.max(np.abs(wave))).astype(np.float32)


def synth_lyrics(style: dict, rng: np.random.Generator, appeal: float = 0.0) -> str:
    """Verses drawn mostly from the style's theme vocabulary, and a refrain repeated as often as
    the track's appeal asks (up to six times)."""
    vocab = THEMES[style["style"] % len(THEMES)][1]
    lines = []
    for _ in range(int(rng.integers(8, 16))):
        words = [
            str(rng.choice(vocab)) if rng.random() < 0.7 else str(rng.choice(FILLER))
            for _ in range(int(rng.integers(5, 9)))
        ]
        lines.append(" ".join(words).capitalize())
    refrain = "Oh oh yeah, na na na, hey hey"
    for _ in range(int(round(6 * appeal))):
        lines.insert(int(rng.integers(0, len(lines) + 1)), refrain)
    return "\n".join(lines)


def write_sample(out: Path, cfg: SampleConfig = SampleConfig(), progress: bool = True) -> dict[str, Path]:
    """Write the sample raw set into ``out``; return the paths of its parts.

    ``out`` receives ``lastfm-dataset-1K.tar.gz`` (plays and profiles, exact LastFM-1K
    formats), ``audio/*.flac`` with ``audio_manifest.csv`` (artist_name, track_name, path,
    duration_seconds: clips are previews, the column gives the full length),
    ``lyrics_manifest.jsonl`` (artist_name, track_name, language, lyrics), ``durations.csv``,
    and ``planted.json`` (each track's style and each user's taste: the ground truth that tests
    of the planted structure use; it is not part of the published dataset).
    """
    rng = np.random.default_rng(cfg.seed)
    t0 = int(datetime.fromisoformat(cfg.start).replace(tzinfo=UTC).timestamp())
    t1 = int(datetime.fromisoformat(cfg.end).replace(tzinfo=UTC).timestamp())
    styles = _styles(cfg, rng)
    tracks = _tracks(cfg, rng, styles, t0, t1)
    per_user, users = _plays(cfg, rng, tracks, t0, t1)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "archive": out / ARCHIVE_NAME,
        "audio_manifest": out / "audio_manifest.csv",
        "lyrics_manifest": out / "lyrics_manifest.jsonl",
        "durations": out / "durations.csv",
        "planted": out / "planted.json",
    }
    _write_archive(
        paths["archive"],
        {
            f"lastfm-dataset-1K/{PROFILE_NAME}": _profile_tsv(users),
            "lastfm-dataset-1K/README.txt": b"Synthetic sample in the LastFM-1K format, written by mmbench.\n",
            f"lastfm-dataset-1K/{PLAYS_NAME}": _plays_tsv(per_user, users, tracks, rng),
        },
    )
    audio_rows, lyric_rows = _content(out, cfg, rng, styles, tracks, progress)
    write_atomic(
        paths["audio_manifest"],
        _csv([["artist_name", "track_name", "path", "duration_seconds"], *audio_rows]),
    )
    write_atomic(
        paths["durations"],
        _csv(
            [
                ["artist_name", "track_name", "duration_seconds"],
                *[[t["artist_name"], t["track_name"], t["duration_seconds"]] for t in tracks],
            ]
        ),
    )
    write_atomic(
        paths["lyrics_manifest"], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lyric_rows)
    )
    planted = {
        "config": asdict(cfg),
        "styles": styles,
        "tracks": [
            {k: t[k] for k in ("artist_name", "track_name", "style", "released", "appeal")} for t in tracks
        ],
        "users": [{"user_id": u["user_id"], "taste": u["taste"]} for u in users],
    }
    write_atomic(paths["planted"], json.dumps(planted, ensure_ascii=False, indent=1))
    return paths


def _content(
    out: Path, cfg: SampleConfig, rng: np.random.Generator, styles: list, tracks: list[dict], progress: bool
) -> tuple[list[list], list[dict]]:
    """The tracks' audio clips (written as FLAC under ``out/audio``) and lyrics, each for a
    share of the tracks; returns the rows of the two manifests."""
    (out / "audio").mkdir(exist_ok=True)
    audio_rows, lyric_rows = [], []
    for track in progress_bar(tracks, desc="sample audio and lyrics", disable=not progress):
        style = styles[track["style"]]
        if rng.random() < cfg.audio_coverage:
            rel = f"audio/{track['index']:05d}.flac"
            wave = synth_waveform(style, cfg, rng, track["appeal"])
            sf.write(out / rel, wave, cfg.sample_rate, format="FLAC", subtype="PCM_16")
            audio_rows.append([track["artist_name"], track["track_name"], rel, track["duration_seconds"]])
        if rng.random() < cfg.lyrics_coverage:
            lyrics = synth_lyrics(style, rng, track["appeal"])
            lyric_rows.append(
                {
                    "artist_name": track["artist_name"],
                    "track_name": track["track_name"],
                    "language": "en",
                    "lyrics": lyrics,
                }
            )
    return audio_rows, lyric_rows


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def prepare_sample(folder: Path, cfg: SampleConfig, progress: bool = True) -> tuple[dict[str, Path], bool]:
    """The sample raw set in ``folder``, written unless a finished one of this generator version
    and configuration is there already; returns its paths and whether it was written now."""
    marker = folder / "done.json"
    wanted = {"generator": SAMPLE_VERSION, **asdict(cfg)}
    written = not marker.exists() or json.loads(marker.read_text()) != wanted
    if written:
        shutil.rmtree(folder, ignore_errors=True)
        write_sample(folder, cfg, progress=progress)
        write_atomic(marker, json.dumps(wanted))
    names = {"raw": ARCHIVE_NAME, "durations": "durations.csv"}
    names |= {"audio": "audio_manifest.csv", "lyrics": "lyrics_manifest.jsonl"}
    return {part: folder / name for part, name in names.items()}, written
