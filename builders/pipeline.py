"""The build: every stage in order, each cached under ``<out>/.build`` so that a rerun resumes.

A stage's artefacts are Arrow IPC files plus a JSON marker holding the stage's key: a digest of
its code (the source of the stage's module, of the project modules it imports and of this one,
which holds the glue), its upstream key and the recipe values it reads, in the recipe's order.
The marker is written last and atomically, so a stage killed halfway is simply run again.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mmbench.builders import (
    completion,
    content,
    filter,
    identify,
    ingest,
    instances,
    mgphot,
    publish,
    sample,
    sessionize,
    split,
)
from mmbench.errors import MmbenchError
from mmbench.files import atomic_path, write_atomic
from mmbench.info import sha256_file
from mmbench.schema import MGPHOT_DIM, content_label, embedding_schema, instances_schema, mgphot_schema

WORK = ".build"
# The caches under WORK that may hold hours of work: a failed build keeps them.
EMBEDDING_CACHE, MGPHOT_CACHE = "embedding-cache", "mgphot-cache"


def _project_imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the source file ``path`` imports (``from P import m``
    may name a module or an attribute: both candidates are returned, unknown ones drop out)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == package or n.startswith(package + ".")}


@functools.cache
def code_digest(module: str, package: str = "mmbench") -> str:
    """SHA-256 of the source of ``module`` and of every ``package`` module it imports,
    directly or not: a stage's cached artefacts are reused only while this code is unchanged."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # ``from package import attribute``: not a module
            spec = None
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        seen[name] = Path(spec.origin)
        todo.extend(_project_imports(seen[name], package))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\n".encode())
        digest.update(hashlib.sha256(seen[name].read_bytes()).digest())
    return digest.hexdigest()


def recipe_values(recipe: dict[str, Any], section: str, keys: list[str] | None = None) -> list[list]:
    """The [key, value] pairs of a recipe section in the recipe's order (only ``keys`` when
    given): the order of ``[filters]`` is the order they run in, so a stage key keeps it."""
    table = recipe[section]
    return [[k, table[k]] for k in (keys if keys is not None else list(table))]


class StageCache:
    """Runs stages, or loads their artefacts when their key is unchanged."""

    def __init__(self, work: Path, log: Callable[[str], None]):
        self.work = work
        self.log = log
        work.mkdir(parents=True, exist_ok=True)

    def run(
        self,
        name: str,
        module: str,
        key_parts: dict[str, Any],
        compute: Callable[[], tuple[dict[str, pl.DataFrame], dict]],
    ) -> tuple[dict[str, pl.DataFrame], dict, str]:
        """Run ``compute`` (the stage ``name``, whose code lives in ``module``) or reuse its
        artefacts; ``key_parts`` are its inputs' keys and the recipe values it reads."""
        # This module's own source (the glue around each stage), not what it imports.
        code = [code_digest(module), hashlib.sha256(Path(__file__).read_bytes()).hexdigest()]
        key = hashlib.sha256(json.dumps({"stage": name, "code": code, **key_parts}).encode()).hexdigest()
        marker = self.work / f"{name}.json"
        folder = self.work / name
        if marker.exists():
            done = json.loads(marker.read_text())
            if done["key"] == key and all((folder / f"{f}.arrow").exists() for f in done["frames"]):
                self.log(f"{name}: unchanged, reusing {folder}")
                frames = {f: pl.read_ipc(folder / f"{f}.arrow") for f in done["frames"]}
                return frames, done["report"], key
            marker.unlink()
        started = time.perf_counter()
        frames, report = compute()
        self.log(f"{name}: {time.perf_counter() - started:.1f} s")
        folder.mkdir(exist_ok=True)
        for f, frame in frames.items():
            with atomic_path(folder / f"{f}.arrow") as tmp:
                frame.write_ipc(tmp, compression="lz4")
        write_atomic(marker, json.dumps({"key": key, "frames": list(frames), "report": report}, indent=1))
        return frames, report, key


def build_folder(out: Path, recipe: dict[str, Any], **options: Any) -> dict:
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


def read_durations(path: Path) -> pl.DataFrame:
    """A durations manifest (CSV or JSON Lines with artist_name, track_name, duration_seconds)
    as (track_id, duration_seconds); the first row wins for a song listed twice."""
    try:
        frame = (
            pl.read_ndjson(path)
            if path.suffix in (".jsonl", ".ndjson")
            else pl.read_csv(path, infer_schema=False)
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MmbenchError(f"{path}: cannot read the durations manifest: {exc}") from None
    missing = {"artist_name", "track_name", "duration_seconds"} - set(frame.columns)
    if missing:
        raise MmbenchError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; expected artist_name, track_name, duration_seconds"
        )
    frame = frame.with_columns(pl.col("duration_seconds").cast(pl.Float64, strict=False))
    bad = frame.with_row_index("row").filter(
        pl.col("duration_seconds").is_null() | (pl.col("duration_seconds") <= 0)
    )
    if bad.height:
        raise MmbenchError(f"{path}: line {bad['row'][0] + 2}: duration_seconds must be a positive number")
    return (
        frame.with_columns(identify.track_ids_for(frame["artist_name"], frame["track_name"]))
        .unique("track_id", keep="first", maintain_order=True)
        .select("track_id", "duration_seconds")
    )


def _annotate(
    out: Path,
    enrich: dict[str, Any],
    kept: pl.DataFrame,
    plays: pl.DataFrame,
    sessions: pl.DataFrame,
    lyric_texts: pl.DataFrame | None,
    options: dict[str, Any],
    progress: bool,
) -> tuple[pl.DataFrame, dict, int]:
    """The ``mgphot`` rows of the ``mgphot_limit`` most played tracks (all when 0), from the
    answer cache, asking the annotator for the ones it lacks."""
    train = plays.join(sessions.filter(pl.col("split") == "train").select("session"), on="session")
    counts = train.group_by("track").agg(pl.len().alias("n_plays_train"))
    ranked = kept.join(counts, on="track", how="left").with_columns(pl.col("n_plays_train").fill_null(0))
    songs = mgphot.songs_to_annotate(ranked, lyric_texts, enrich["mgphot_limit"])
    backend, model = enrich["mgphot_backend"], enrich["mgphot_model"] or None
    name = mgphot.annotator_name(backend, model)
    cache_root = Path(
        options.get("cache") or os.environ.get("MMBENCH_MGPHOT_CACHE") or out / WORK / MGPHOT_CACHE
    )
    cache = mgphot.AnswerCache(cache_root, name)
    device = options.get("device") or "auto"
    asked = mgphot.fill_cache(songs, cache, backend, model, options.get("url"), device, progress=progress)
    ids = sorted(s.track_id for s in songs)
    frame = pl.DataFrame(
        {
            "track_id": ids,
            "genes": np.asarray([cache.answers[t] for t in ids], dtype=np.float32).reshape(len(ids), -1),
            "annotator": [name] * len(ids),
        }
    )
    report = {
        "model": name,
        "dim": MGPHOT_DIM,
        "prompt_version": mgphot.PROMPT_VERSION,
        "annotated": len(ids),
        "with_lyrics": sum(s.lyrics is not None for s in songs),
    }
    return frame, report, asked


def _fingerprint(path: Path | None) -> list | None:
    return None if path is None else [str(path), path.stat().st_size, path.stat().st_mtime_ns]


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour shapes the outputs."""
    out = {"python": platform.python_version()}
    for package in ("mmbench", "polars", "pyarrow", "numpy", "datasets", "matplotlib"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def build(
    out: Path,
    recipe: dict[str, Any],
    raw: Path | None = None,
    sample_config: sample.SampleConfig | None = None,
    durations_path: Path | None = None,
    audio_manifest: Path | None = None,
    lyrics_manifest: Path | None = None,
    encoder_options: dict[str, Any] | None = None,
    mgphot_options: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict:
    """Build the dataset folder ``out`` from ``raw`` (or from the synthetic sample) with ``recipe``.

    Content stages run only when their manifest is given (the sample always gives its own):
    ``audio_manifest`` adds durations and the ``audio-<recipe enrich.audio_encoder>`` config,
    ``lyrics_manifest`` the ``lyrics-<enrich.lyrics_encoder>`` config. ``encoder_options``
    (``model``, ``device``, ``trust_remote_code``, ``cache``: the embedding cache folder) go to
    the encoders. The ``mgphot``
    config is added when the recipe's ``enrich.annotate_mgphot`` is true; ``mgphot_options``
    (``url``, ``cache``, ``device``) go to the annotator.

    Returns the build report (also written to ``out/build_report.json``).
    """
    encoder_options = encoder_options or {}
    cache = StageCache(out / WORK, log)
    if sample_config is not None:
        sample_dir = out / WORK / "sample-raw"
        marker = sample_dir / "done.json"
        wanted = {"generator": sample.SAMPLE_VERSION, **asdict(sample_config)}
        if not marker.exists() or json.loads(marker.read_text()) != wanted:
            log("sample: generating the synthetic raw set")
            shutil.rmtree(sample_dir, ignore_errors=True)
            sample.write_sample(sample_dir, sample_config, progress=progress)
            write_atomic(marker, json.dumps(wanted))
        raw = sample_dir / ingest.ARCHIVE_NAME
        durations_path = durations_path or sample_dir / "durations.csv"
        audio_manifest = audio_manifest or sample_dir / "audio_manifest.csv"
        lyrics_manifest = lyrics_manifest or sample_dir / "lyrics_manifest.jsonl"
    assert raw is not None
    source = ingest.resolve_raw(raw)
    rejects_path = out / WORK / "rejects.jsonl"

    def run_ingest() -> tuple[dict[str, pl.DataFrame], dict]:
        result = ingest.ingest(source, rejects_path, progress=progress)
        return {"plays": result.plays, "users": result.users, "pairs": result.pairs}, result.report

    frames, ingest_report, key = cache.run(
        "ingest", ingest.__name__, {"source": source.fingerprint()}, run_ingest
    )
    stages: dict[str, dict] = {"ingest": ingest_report}
    users = frames["users"]

    def run_identify() -> tuple[dict[str, pl.DataFrame], dict]:
        plays, tracks, report = identify.identify(frames["plays"], frames["pairs"])
        return {"plays": plays, "tracks": tracks}, report

    ident, stages["identify"], key = cache.run("identify", identify.__name__, {"up": key}, run_identify)
    tracks = ident["tracks"]
    plays = ident["plays"]
    manifests = content.read_manifests(audio_manifest, lyrics_manifest)
    audio_files, lyric_texts = manifests.get("audio"), manifests.get("lyrics")
    known = [read_durations(durations_path)] if durations_path is not None else []
    if audio_files is not None:
        known.append(audio_files.select("track_id", "duration_seconds"))
    durations = pl.DataFrame(schema={"track": pl.UInt32, "duration_seconds": pl.Float32})
    if known:  # the durations manifest first, then the audio files
        durations = tracks.join(
            pl.concat([k.with_columns(pl.col("duration_seconds").cast(pl.Float32)) for k in known]).unique(
                "track_id", keep="first", maintain_order=True
            ),
            on="track_id",
        ).select("track", "duration_seconds")

    filters = recipe["filters"]
    before = recipe["sessionize"]["after_filters"]
    after = [f for f in filters if f not in before]
    if before:

        def run_prefilter() -> tuple[dict[str, pl.DataFrame], dict]:
            kept, report = filter.apply_filters(plays, filters, before)
            return {"plays": kept}, report

        done, stages["filter_before_sessionize"], key = cache.run(
            "filter_before_sessionize",
            filter.__name__,
            {"up": key, "filters": recipe_values(recipe, "filters", before)},
            run_prefilter,
        )
        plays = done["plays"]

    def run_sessionize() -> tuple[dict[str, pl.DataFrame], dict]:
        ordered, report = sessionize.sessionize(plays, recipe["sessionize"]["gap_seconds"])
        return {"plays": ordered}, report

    done, stages["sessionize"], key = cache.run(
        "sessionize",
        sessionize.__name__,
        {"up": key, "gap": recipe["sessionize"]["gap_seconds"]},
        run_sessionize,
    )

    def run_completion() -> tuple[dict[str, pl.DataFrame], dict]:
        with_ratios, report = completion.completion_ratios(done["plays"], durations)
        report["tracks_with_duration"] = durations.height
        return {"plays": with_ratios}, report

    done, stages["completion"], key = cache.run(
        "completion",
        completion.__name__,
        {"up": key, "durations": _fingerprint(durations_path), "audio": _fingerprint(audio_manifest)},
        run_completion,
    )

    def run_filter() -> tuple[dict[str, pl.DataFrame], dict]:
        kept, report = filter.apply_filters(done["plays"], filters, after)
        if kept.height == 0:
            raise MmbenchError(
                "the recipe's filters removed every play; relax them (e.g. --set filters.min_user_plays=...)"
            )
        return {"plays": kept}, report

    completed = done["plays"]
    done, stages["filter"], key = cache.run(
        "filter", filter.__name__, {"up": key, "filters": recipe_values(recipe, "filters", after)}, run_filter
    )
    plays = done["plays"]

    def run_split() -> tuple[dict[str, pl.DataFrame], dict]:
        sessions, report = split.temporal_split(
            plays, recipe["split"]["test_quantile"], recipe["split"]["validation_quantile"]
        )
        user_ids = users["user_id"]
        sessions = sessions.with_columns(
            pl.format("{}:{}", pl.Series(user_ids.gather(sessions["user"])), "start").alias("session_id")
        )
        return {"sessions": sessions}, report

    done, stages["split"], key = cache.run(
        "split", split.__name__, {"up": key, "split": recipe_values(recipe, "split")}, run_split
    )
    sessions = done["sessions"]
    catalog_codes = np.sort(plays["track"].unique().to_numpy())

    def run_selection_audit() -> tuple[dict[str, pl.DataFrame], dict]:
        cutoff = stages["split"]["test_cutoff"]
        found = filter.passed_only_with_later_plays(completed, filters, after, cutoff)
        if before:
            found |= filter.passed_only_with_later_plays(ident["plays"], filters, before, cutoff)
        return {}, later_plays_report(found, plays, sessions, filters)

    _, later_plays, key = cache.run(
        "selection_audit",
        filter.__name__,
        {"up": key, "filters": recipe_values(recipe, "filters")},
        run_selection_audit,
    )

    def run_instances() -> tuple[dict[str, pl.DataFrame], dict]:
        tables, report = instances.build_instances(
            plays,
            sessions,
            catalog_codes,
            tracks["track_id"],
            users["user_id"],
            recipe["instances"]["paper_sampled_negatives"],
            recipe["instances"]["seed"],
        )
        return tables, report

    inst, stages["instances"], key = cache.run(
        "instances",
        instances.__name__,
        {"up": key, "instances": recipe_values(recipe, "instances")},
        run_instances,
    )

    kept = tracks.join(
        pl.DataFrame({"track": catalog_codes}).cast({"track": tracks["track"].dtype}), on="track"
    )
    embed_root = Path(encoder_options.get("cache") or out / WORK / EMBEDDING_CACHE)
    encoders = {kind: recipe["enrich"][f"{kind}_encoder"] for kind in manifests}
    options = {k: v for k, v in encoder_options.items() if k != "cache"}
    started = time.perf_counter()
    enriched = content.embed_catalog(kept, manifests, encoders, options, embed_root, progress=progress)
    for config, (_, info) in enriched.items():
        # How much came from the cache depends on the run, not the inputs: logged, not reported.
        log(f"{config}: {info.pop('computed_now')} computed, the rest from the cache")
    if enriched:
        log(f"content: {time.perf_counter() - started:.1f} s")
    if recipe["enrich"]["annotate_mgphot"]:
        started = time.perf_counter()
        frame, report, asked = _annotate(
            out, recipe["enrich"], kept, plays, sessions, lyric_texts, mgphot_options or {}, progress
        )
        enriched["mgphot"] = (frame, report)
        log(f"mgphot: {time.perf_counter() - started:.1f} s ({asked} tracks asked, the rest from the cache)")
    for frame, report in enriched.values():
        report["coverage"] = content.coverage(kept, plays, frame["track_id"])

    started = time.perf_counter()
    report = _publish(
        out,
        recipe,
        stages,
        later_plays,
        plays,
        sessions,
        tracks,
        durations,
        users,
        inst,
        rejects_path,
        enriched,
    )
    log(f"publish: {time.perf_counter() - started:.1f} s")
    return report


def later_plays_report(
    found: dict[str, pl.Series], plays: pl.DataFrame, sessions: pl.DataFrame, filters: dict[str, Any]
) -> dict:
    """How much the selection of users and tracks owes to plays after the test cutoff: per
    threshold filter, the units that pass it only thanks to them and how many of those the
    build keeps; then the kept users and tracks in that case under any filter, and the
    catalogue tracks without a training play."""
    kept = {"user": plays["user"].unique(), "track": plays["track"].unique()}
    per_filter = {}
    for name, units in found.items():
        unit = filter.THRESHOLDS[name]
        per_filter[name] = {
            "unit": unit,
            "threshold": filters[name],
            "pass_only_with_later_plays": units.len(),
            "kept": int(units.is_in(kept[unit].implode()).sum()),
        }
    report: dict[str, Any] = {"filters": per_filter}
    for unit in ("user", "track"):
        owing = [found[n] for n in found if filter.THRESHOLDS[n] == unit]
        union = pl.concat(owing).unique() if owing else pl.Series(unit, [], dtype=pl.UInt32)
        report[f"{unit}s_kept"] = kept[unit].len()
        report[f"{unit}s_kept_only_with_later_plays"] = int(union.is_in(kept[unit].implode()).sum())
    train = plays.join(sessions.filter(pl.col("split") == "train").select("session"), on="session")
    report["tracks_without_training_play"] = kept["track"].len() - train["track"].n_unique()
    return report


def _publish(
    out: Path,
    recipe: dict,
    stages: dict,
    later_plays: dict,
    plays: pl.DataFrame,
    sessions: pl.DataFrame,
    tracks: pl.DataFrame,
    durations: pl.DataFrame,
    users: pl.DataFrame,
    inst: dict[str, pl.DataFrame],
    rejects_path: Path,
    enriched: dict[str, tuple[pl.DataFrame, dict]],
) -> dict:
    staging = out / WORK / "publish"
    shutil.rmtree(staging, ignore_errors=True)
    catalog = publish.track_catalog(tracks, durations, plays, sessions)
    user_table = publish.user_catalog(users, sessions)
    session_rows = publish.session_table(plays, sessions, tracks["track_id"], users["user_id"])
    for name in ("train", "validation", "test"):
        rows = session_rows.filter(pl.col("split") == name)
        publish.write_parquet_shards(publish.to_arrow(rows, "sessions"), staging / "data" / "sessions", name)
    for name, table in inst.items():
        labelled = table.with_columns(
            pl.col("target_track_id").is_in(frame["track_id"].implode()).alias(content_label(config))
            for config, (frame, _) in sorted(enriched.items())
        )
        publish.write_parquet_shards(
            publish.to_arrow(labelled, instances_schema(list(enriched))), staging / "data" / "instances", name
        )
    publish.write_parquet_shards(publish.to_arrow(catalog, "tracks"), staging / "data" / "tracks", "catalog")
    publish.write_parquet_shards(publish.to_arrow(user_table, "users"), staging / "data" / "users", "catalog")
    for config, (frame, info) in enriched.items():
        schema = mgphot_schema() if config == "mgphot" else embedding_schema(info["dim"])
        publish.write_parquet_shards(publish.to_arrow(frame, schema), staging / "data" / config, "catalog")
    recipe_toml = _recipe_toml(recipe)
    statistics = {
        "plays": plays.height,
        "sessions": sessions.height,
        "users": user_table.height,
        "tracks": catalog.height,
        "tracks_cold": int((catalog["n_plays_train"] == 0).sum()),
        "tracks_with_duration": int(catalog["duration_seconds"].is_not_null().sum()),
        "instances": {k: v for k, v in stages["instances"].items() if k in ("next-track", "paper-sampled")},
    }
    report: dict[str, Any] = {
        "mmbench_version": versions()["mmbench"],
        "recipe": recipe,
        "inputs": stages["ingest"]["inputs"],
        "stages": stages,
        "statistics": statistics,
        "later_plays_in_selection": later_plays,
        "content": {config: info for config, (_, info) in enriched.items()},
        "versions": versions(),
    }
    plots = publish.write_plots(staging / "plots", sessions, catalog, plays, stages["split"])
    report["outputs"] = {
        str(p.relative_to(staging)): sha256_file(p) for p in sorted((staging / "data").rglob("*.parquet"))
    }
    write_atomic(staging / "README.md", publish.card_text(report, plots, recipe_toml))
    write_atomic(staging / "build_report.json", publish.dumps_report(report))
    shutil.copyfile(rejects_path, staging / "rejects.jsonl")
    for entry in ("data", "plots"):
        publish.replace_tree(staging / entry, out / entry)
    for entry in ("README.md", "rejects.jsonl", "build_report.json"):
        (staging / entry).replace(out / entry)
    shutil.rmtree(staging)
    return report


def _recipe_toml(recipe: dict) -> str:
    lines = [f"name = {json.dumps(recipe['name'])}", f"description = {json.dumps(recipe['description'])}"]
    for section in ("sessionize", "filters", "split", "instances", "enrich"):
        lines.append(f"\n[{section}]")
        for k, v in recipe[section].items():
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"
