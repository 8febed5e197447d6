"""The build: the declared stages in order (each cached under ``<out>/.build``, so that a rerun
resumes), then the content configs (each with its own cache) and the published folder.

:func:`core_stages` declares the stages of a recipe; :class:`~mmbench.builders.stages.StageCache`
runs each one or reuses its artefacts when its key (its code, the recipe values it reads, the
stages it takes from and its outside inputs) is unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mmbench.builders import (
    completion,
    content,
    filters,
    identify,
    ingest,
    instances,
    mgphot,
    publish,
    sample,
    sessionize,
    split,
)
from mmbench.builders.kinds import KINDS, MANIFEST_KINDS, kind_of_config
from mmbench.builders.recipe import Recipe
from mmbench.builders.stages import Context, Frames, Stage, StageCache
from mmbench.errors import MmbenchError

log = logging.getLogger(__name__)

WORK = ".build"
# The caches under WORK that may hold hours of work: a failed build keeps them.
EMBEDDING_CACHE, MGPHOT_CACHE = "embedding-cache", "mgphot-cache"
NOT_REPORTED = ("selection_audit",)  # stages whose report is not a row count (published apart)


def _ingest(ctx: Context) -> tuple[Frames, dict]:
    result = ingest.ingest(ctx.inputs["source"], ctx.inputs["rejects"], progress=ctx.inputs["progress"])
    return {"plays": result.plays, "users": result.users, "pairs": result.pairs}, result.report


def _identify(ctx: Context) -> tuple[Frames, dict]:
    plays, tracks, report = identify.identify(ctx.frame("ingest", "plays"), ctx.frame("ingest", "pairs"))
    return {"plays": plays, "tracks": tracks}, report


def _filter_names(recipe: Recipe, before_sessionize: bool) -> list[str]:
    before = recipe.sessionize.after_filters
    return before if before_sessionize else [f for f in recipe.filters if f not in before]


REACHED = "reached-"  # a filter stage's artefact: when each unit reached a threshold


def _filtered(
    plays: pl.DataFrame, recipe: Recipe, before_sessionize: bool, count_before: float | None = None
) -> tuple[Frames, dict]:
    reached: dict[str, pl.DataFrame] = {}
    names = _filter_names(recipe, before_sessionize)
    kept, report = filters.apply_filters(plays, recipe.filters, names, reached, count_before)
    return {"plays": kept, **{REACHED + name: frame for name, frame in reached.items()}}, report


def _prefilter(ctx: Context) -> tuple[Frames, dict]:
    return _filtered(ctx.frame("identify", "plays"), ctx.recipe, before_sessionize=True)


def _sessionize(ctx: Context) -> tuple[Frames, dict]:
    source = "filter_before_sessionize" if "filter_before_sessionize" in ctx.frames else "identify"
    ordered, report = sessionize.sessionize(ctx.frame(source, "plays"), ctx.recipe.sessionize.gap_seconds)
    return {"plays": ordered}, report


def _completion(ctx: Context) -> tuple[Frames, dict]:
    audio = ctx.inputs["manifests"].get("audio")
    durations = completion.known_durations(ctx.frame("identify", "tracks"), ctx.inputs["durations"], audio)
    with_ratios, report = completion.completion_ratios(ctx.frame("sessionize", "plays"), durations)
    report["tracks_with_duration"] = durations.height
    return {"plays": with_ratios, "durations": durations}, report


def _filter(ctx: Context) -> tuple[Frames, dict]:
    plays = ctx.frame("completion", "plays")
    frames, report = _filtered(plays, ctx.recipe, before_sessionize=False)
    cut = ctx.recipe.split
    if cut.select_before_test_cutoff and frames["plays"].height:
        # The cutoffs of the whole-period selection, then the selection redone on the plays
        # before its test cutoff; the split keeps these cutoffs (docs/protocol.md).
        validation, test = split.temporal_cutoffs(
            frames["plays"]["timestamp"].to_numpy(), cut.test_quantile, cut.validation_quantile
        )
        frames, report = _filtered(plays, ctx.recipe, before_sessionize=False, count_before=test)
        report["cutoffs"] = {"validation": validation, "test": test}
    if frames["plays"].height == 0:
        raise MmbenchError(
            "the recipe's filters removed every play; relax them (e.g. --set filters.min_user_plays=...)"
        )
    return frames, report


def _split(ctx: Context) -> tuple[Frames, dict]:
    cut = ctx.recipe.split
    fixed = ctx.reports["filter"].get("cutoffs")
    sessions, report = split.temporal_split(
        ctx.frame("filter", "plays"),
        cut.test_quantile,
        cut.validation_quantile,
        (fixed["validation"], fixed["test"]) if fixed else None,
    )
    user_ids = ctx.frame("ingest", "users")["user_id"]
    sessions = sessions.with_columns(
        pl.format("{}:{}", pl.Series(user_ids.gather(sessions["user"])), "start").alias("session_id")
    )
    return {"sessions": sessions}, report


def _selection_audit(ctx: Context) -> tuple[Frames, dict]:
    reached = {
        name.removeprefix(REACHED): frame
        for stage in ("filter_before_sessionize", "filter")
        for name, frame in ctx.frames.get(stage, {}).items()
        if name.startswith(REACHED)
    }
    found = filters.passed_only_with_later_plays(reached, ctx.reports["split"]["test_cutoff"])
    plays, sessions = ctx.frame("filter", "plays"), ctx.frame("split", "sessions")
    later = filters.kept_only_with_later_plays(found, plays["track"].unique(), "track")
    report = filters.later_plays_report(found, plays, sessions, ctx.recipe.filters)
    return {"tracks_kept_only_with_later_plays": later.to_frame("track")}, report


def _instances(ctx: Context) -> tuple[Frames, dict]:
    plays = ctx.frame("filter", "plays")
    tables, report = instances.build_instances(
        plays,
        ctx.frame("split", "sessions"),
        np.sort(plays["track"].unique().to_numpy()),
        ctx.frame("identify", "tracks")["track_id"],
        ctx.frame("ingest", "users")["user_id"],
        ctx.recipe.instances.paper_sampled_negatives,
        ctx.recipe.instances.seed,
        instances.target_can_repeat_prefix(ctx.recipe.filters),
    )
    later = ctx.frame("selection_audit", "tracks_kept_only_with_later_plays")["track"]
    report["targets_kept_only_with_later_plays"] = instances.targets_among(
        tables, later, ctx.frame("identify", "tracks")
    )
    return tables, report


def core_stages(recipe: Recipe) -> list[Stage]:
    """The cached stages of a recipe, in order; the play filters that run before sessionizing
    (the paper's order) are a stage of their own."""
    before = _filter_names(recipe, before_sessionize=True)
    after = _filter_names(recipe, before_sessionize=False)
    prefiltered = ("filter_before_sessionize",) if before else ()
    played = prefiltered or ("identify",)
    stages = [
        Stage("ingest", _ingest, ingest.__name__, inputs=("source",)),
        Stage("identify", _identify, identify.__name__, needs=("ingest",)),
    ]
    if before:
        reads = tuple(f"filters.{f}" for f in before) + ("sessionize.after_filters",)
        stages.append(Stage("filter_before_sessionize", _prefilter, filters.__name__, reads, ("identify",)))
    return stages + [
        Stage("sessionize", _sessionize, sessionize.__name__, ("sessionize.gap_seconds",), played),
        Stage("completion", _completion, completion.__name__, (), ("sessionize", "identify"), ("durations", "audio")),
        Stage("filter", _filter, filters.__name__, (*(f"filters.{f}" for f in after), "split"), ("completion",)),
        Stage("split", _split, split.__name__, ("split",), ("filter", "ingest")),
        Stage("selection_audit", _selection_audit, filters.__name__, ("filters",), (*prefiltered, "filter", "split")),
        Stage("instances", _instances, instances.__name__, ("instances", "filters.dedupe_session_repeats"), ("filter", "split", "identify", "ingest", "selection_audit")),
    ]  # fmt: skip


def build_folder(out: Path, recipe: Recipe, **options: Any) -> dict:
    """:func:`build` into ``out`` after checking that it is a build folder or new; a failed
    first build leaves nothing behind but its embedding and answer caches (hours of work, from
    which the next try resumes)."""
    if out.exists() and not out.is_dir():
        raise MmbenchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / WORK).is_dir():
        raise MmbenchError(f"{out}: folder is not empty and holds no mmbench build; choose another --out")
    created = not out.exists()
    try:
        return build(out, recipe, **options)
    except MmbenchError:
        if created:
            _remove_failed_build(out)
        raise


def _remove_failed_build(out: Path) -> None:
    caches = [out / WORK / c for c in (EMBEDDING_CACHE, MGPHOT_CACHE)]
    if not any(c.exists() for c in caches):
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in [*out.iterdir(), *(out / WORK).iterdir()]:
        if entry.name == WORK or entry in caches:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()


def build(
    out: Path,
    recipe: Recipe,
    raw: Path | None = None,
    sample_config: sample.SampleConfig | None = None,
    durations_path: Path | None = None,
    manifests: dict[str, Path | None] | None = None,
    encoder_options: dict[str, Any] | None = None,
    mgphot_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Build the dataset folder ``out`` from ``raw`` (or from the synthetic sample) with ``recipe``.

    ``manifests`` gives a content kind's manifest by kind name (the sample always gives its own):
    ``audio`` adds durations and the ``audio-<recipe enrich.audio_encoder>`` config, ``lyrics``
    the ``lyrics-<enrich.lyrics_encoder>`` config; a kind made from the catalogue (``text``) is
    built whenever its recipe encoder is not empty (:mod:`mmbench.builders.kinds`). ``encoder_options``
    (``model``, ``device``, ``trust_remote_code``, ``cache``: the embedding cache folder) go to
    the encoders. The ``mgphot`` config is added when the recipe's ``enrich.annotate_mgphot`` is
    true; ``mgphot_options`` (``url``, ``cache``, ``device``) go to the annotator.

    Returns the build report (also written to ``out/build_report.json``).
    """
    given = manifests or {}
    paths = {"raw": raw, "durations": durations_path, **{k.name: given.get(k.name) for k in MANIFEST_KINDS}}
    inputs = _stage_inputs(out, paths, sample_config, progress)
    ctx = StageCache(out / WORK, __name__).run(core_stages(recipe), Context(recipe, inputs))
    plays, sessions = ctx.frame("filter", "plays"), ctx.frame("split", "sessions")
    tracks = ctx.frame("identify", "tracks")
    kept = tracks.join(plays.select(pl.col("track").unique()), on="track").sort("track")
    enriched = _content_configs(out, recipe, ctx, kept, encoder_options or {}, mgphot_options or {})
    started = time.perf_counter()
    built = publish.Built(
        recipe=recipe,
        stages={name: r for name, r in ctx.reports.items() if name not in NOT_REPORTED},
        later_plays=ctx.reports["selection_audit"],
        plays=plays,
        sessions=sessions,
        tracks=tracks,
        durations=ctx.frame("completion", "durations"),
        users=ctx.frame("ingest", "users"),
        instances=ctx.frames["instances"],
        rejects=inputs["rejects"],
        content=enriched,
    )
    report = publish.publish_build(out, out / WORK / "publish", built)
    log.info(f"publish: {time.perf_counter() - started:.1f} s")
    return report


def build_summary(out: Path, report: dict) -> str:
    """The line `mmbench build` ends with: what was built, and how much of it."""
    stats = report["statistics"]
    return (
        f"built {out}: {stats['plays']:,} plays, {stats['sessions']:,} sessions, "
        f"{stats['users']:,} users, {stats['tracks']:,} tracks"
    )


def _stage_inputs(
    out: Path,
    paths: dict[str, Path | None],
    sample_config: sample.SampleConfig | None,
    progress: bool,
) -> dict[str, Any]:
    """What the core stages read: the raw source, the rejects file, the durations and content
    manifests; with ``sample_config``, the generated sample's files fill the paths not given."""
    if sample_config is not None:
        # A manifest the user gives with the sample is read once before generating it, so that
        # a bad one fails at once (a rare combination: the second read below is cheap then).
        content.read_manifests(paths)
        parts, written = sample.prepare_sample(out / WORK / "sample-raw", sample_config, progress)
        if written:
            log.info("sample: generated the synthetic raw set")
        paths = {key: value or parts[key] for key, value in paths.items()}
    return {
        "source": ingest.resolve_raw(paths["raw"]),
        "rejects": out / WORK / "rejects.jsonl",
        "durations": paths["durations"],
        "audio": paths["audio"],
        "manifests": content.read_manifests(paths),
        "progress": progress,
    }


def _content_configs(
    out: Path,
    recipe: Recipe,
    ctx: Context,
    kept: pl.DataFrame,
    encoder_options: dict[str, Any],
    mgphot_options: dict[str, Any],
) -> dict[str, tuple[pl.DataFrame, dict]]:
    """The content kinds' configs and the mgphot config of the kept tracks, each from its own cache."""
    manifests, progress = ctx.inputs["manifests"], ctx.inputs["progress"]
    plays, sessions = ctx.frame("filter", "plays"), ctx.frame("split", "sessions")
    embed_root = Path(encoder_options.get("cache") or out / WORK / EMBEDDING_CACHE)
    encoders = {kind.name: getattr(recipe.enrich, kind.recipe_key) for kind in KINDS}
    options = {k: v for k, v in encoder_options.items() if k != "cache"}
    started = time.perf_counter()
    enriched = content.embed_catalog(kept, manifests, encoders, options, embed_root, progress=progress)
    for config, (_, info) in enriched.items():
        # How much came from the cache depends on the run, not the inputs: logged, not reported.
        log.info(f"{config}: {info.pop('computed_now')} computed, the rest from the cache")
    if enriched:
        log.info(f"content: {time.perf_counter() - started:.1f} s")
    if recipe.enrich.annotate_mgphot:
        started = time.perf_counter()
        cache_root = Path(
            mgphot_options.get("cache") or os.environ.get("MMBENCH_MGPHOT_CACHE") or out / WORK / MGPHOT_CACHE
        )
        lyrics = manifests.get("lyrics")
        frame, report, asked = mgphot.mgphot_config(
            recipe.enrich, kept, plays, sessions, lyrics, cache_root, mgphot_options, progress
        )
        enriched["mgphot"] = (frame, report)
        log.info(
            f"mgphot: {time.perf_counter() - started:.1f} s ({asked} tracks asked, the rest from the cache)"
        )
    for config, (frame, report) in enriched.items():
        report["coverage"] = content.coverage(kept, plays, frame["track_id"])
        kind = kind_of_config(config)
        report["labels_targets"] = kind is None or kind.labels_targets
    return enriched
