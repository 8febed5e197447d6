"""The ``mmbench`` command line. Subcommands import their heavy modules lazily."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from mmbench.errors import MmbenchError


class _Group(click.Group):
    """Turns :class:`MmbenchError` into one line on stderr and exit code 2, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MmbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="mmbench")
def main() -> None:
    """LastFM-1K-MM: build the dataset, inspect it, evaluate predictions."""


@main.command()
@click.option("--sample", is_flag=True, help="Build from the embedded synthetic sample.")
@click.option(
    "--raw",
    type=click.Path(path_type=Path),
    help="lastfm-dataset-1K.tar.gz, its extracted folder, or the plays TSV.",
)
@click.option(
    "--recipe",
    default=None,
    help="A built-in recipe (official, paper, sample) or a .toml file. Default: official, or sample with --sample.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe key, e.g. filters.min_user_plays=500.",
)
@click.option(
    "--durations",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Manifest of track durations (artist_name, track_name, duration_seconds).",
)
@click.option(
    "--audio-manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV/JSONL of artist_name, track_name, path[, duration_seconds]: audio embeddings and durations.",
)
@click.option(
    "--lyrics-manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV/JSONL of artist_name, track_name, lyrics[, language]: lyric embeddings.",
)
@click.option("--audio-encoder", default=None, help="Shortcut for --set enrich.audio_encoder=NAME.")
@click.option("--lyrics-encoder", default=None, help="Shortcut for --set enrich.lyrics_encoder=NAME.")
@click.option(
    "--audio-model",
    default=None,
    help="A Hub name or local folder replacing the audio encoder's default model.",
)
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow encoders whose model code lives on the Hub (MERT)."
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Device of the content encoders (auto = CUDA if present).",
)
@click.option(
    "--embedding-cache",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedding cache folder (default: OUT/.build/embedding-cache); `mmbench embed` shards fill it.",
)
@click.option(
    "--annotate-mgphot",
    is_flag=True,
    help="Add the mgphot config (shortcut for --set enrich.annotate_mgphot=true).",
)
@click.option(
    "--mgphot-limit", type=int, default=None, help="Annotate only the N most played tracks (0: all)."
)
@click.option(
    "--mgphot-backend",
    type=click.Choice(["local", "http"]),
    default=None,
    help="LLM backend of the annotator.",
)
@click.option(
    "--mgphot-model",
    default=None,
    help="Annotator model: a transformers folder/Hub name (local) or the served model (http).",
)
@click.option(
    "--mgphot-url",
    default=None,
    help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (http backend).",
)
@click.option(
    "--mgphot-cache",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Answer cache folder (default: OUT/.build/mgphot-cache).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: the local dataset location that mmbench.load looks at first).",
)
@click.option(
    "--quiet", is_flag=True, help="No progress bars and no stage log; errors and warnings still print."
)
def build(
    sample: bool,
    raw: Path | None,
    recipe: str | None,
    overrides: tuple[str, ...],
    durations: Path | None,
    audio_manifest: Path | None,
    lyrics_manifest: Path | None,
    audio_encoder: str | None,
    lyrics_encoder: str | None,
    audio_model: str | None,
    trust_remote_code: bool,
    device: str,
    embedding_cache: Path | None,
    annotate_mgphot: bool,
    mgphot_limit: int | None,
    mgphot_backend: str | None,
    mgphot_model: str | None,
    mgphot_url: str | None,
    mgphot_cache: Path | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Build the dataset folder from the raw LastFM-1K files or from the synthetic sample."""
    from mmbench.builders.recipe import load_recipe
    from mmbench.loading import default_local_dir

    if sample == (raw is not None):
        raise MmbenchError("give exactly one of --sample or --raw PATH")
    shortcuts = [f"enrich.audio_encoder={json.dumps(audio_encoder)}"] if audio_encoder else []
    shortcuts += [f"enrich.lyrics_encoder={json.dumps(lyrics_encoder)}"] if lyrics_encoder else []
    shortcuts += ["enrich.annotate_mgphot=true"] if annotate_mgphot else []
    shortcuts += [f"enrich.mgphot_limit={mgphot_limit}"] if mgphot_limit is not None else []
    shortcuts += [f"enrich.mgphot_backend={json.dumps(mgphot_backend)}"] if mgphot_backend else []
    shortcuts += [f"enrich.mgphot_model={json.dumps(mgphot_model)}"] if mgphot_model else []
    recipe_dict = load_recipe(recipe or ("sample" if sample else "official"), (*overrides, *shortcuts))
    out = out or default_local_dir()
    if out.exists() and not out.is_dir():
        raise MmbenchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / ".build").is_dir():
        raise MmbenchError(f"{out}: folder is not empty and holds no mmbench build; choose another --out")
    created = not out.exists()
    from mmbench.builders import pipeline
    from mmbench.builders.sample import SampleConfig

    try:
        report = pipeline.build(
            out,
            recipe_dict,
            raw=raw,
            sample_config=SampleConfig() if sample else None,
            durations_path=durations,
            audio_manifest=audio_manifest,
            lyrics_manifest=lyrics_manifest,
            encoder_options={
                "model": audio_model,
                "device": device,
                "trust_remote_code": trust_remote_code,
                "cache": embedding_cache,
            },
            mgphot_options={"url": mgphot_url, "cache": mgphot_cache, "device": device},
            progress=not quiet,
            log=(lambda message: None) if quiet else (lambda message: click.echo(message, err=True)),
        )
    except MmbenchError:
        if created:
            _remove_failed_build(out)
        raise
    from mmbench.builders.ingest import checksum_warnings

    for message in checksum_warnings(report) if not sample else []:
        click.echo(f"warning: {message}", err=True)
    stats = report["statistics"]
    click.echo(
        f"built {out}: {stats['plays']:,} plays, {stats['sessions']:,} sessions, "
        f"{stats['users']:,} users, {stats['tracks']:,} tracks"
    )


@main.command("embed")
@click.option("--dataset", default=None, help="A build folder (default: the local build).")
@click.option(
    "--cache", type=click.Path(path_type=Path, file_okay=False), required=True, help="Embedding cache folder."
)
@click.option("--shard", default="0/1", show_default=True, help="i/n: embed every n-th track from the i-th.")
@click.option("--audio-manifest", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--audio-encoder", default="mfcc", show_default=True)
@click.option(
    "--audio-model", default=None, help="A Hub name or local folder replacing the encoder's default model."
)
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow encoders whose model code lives on the Hub (MERT)."
)
@click.option("--lyrics-manifest", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--lyrics-encoder", default="minilm", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def embed(
    dataset: str | None,
    cache: Path,
    shard: str,
    audio_manifest: Path | None,
    audio_encoder: str,
    audio_model: str | None,
    trust_remote_code: bool,
    lyrics_manifest: Path | None,
    lyrics_encoder: str,
    device: str,
    quiet: bool,
) -> None:
    """Embed one shard of a build's audio and/or lyrics into an embedding cache.

    Run one shard per machine or GPU, copy the cache folders together (that is the merge), then
    `mmbench build ... --audio-manifest ... --embedding-cache DIR` publishes from the cache.
    """
    import mmbench
    from mmbench.builders import content

    if audio_manifest is None and lyrics_manifest is None:
        raise MmbenchError("give --audio-manifest and/or --lyrics-manifest")
    i, n = content.parse_shard(shard)
    catalog = mmbench.load("tracks", "catalog", source=dataset).to_polars().select("track_id")
    jobs = []
    if audio_manifest is not None:
        files = content.read_audio_manifest(audio_manifest).select("track_id", "path")
        options = {"model": audio_model, "device": device, "trust_remote_code": trust_remote_code}
        jobs.append(("audio", audio_encoder, files, options))
    if lyrics_manifest is not None:
        texts = content.read_lyrics_manifest(lyrics_manifest).select("track_id", "lyrics")
        jobs.append(("lyrics", lyrics_encoder, texts, {"device": device}))
    for kind, encoder, listed, options in jobs:
        rows = listed.join(catalog, on="track_id").sort("track_id")
        _, report = content.embed_content(kind, encoder, rows, cache, options, (i, n), progress=not quiet)
        click.echo(
            f"{kind}-{encoder} shard {i}/{n}: {report['computed_now']:,} embedded, {len(report['failed'])} failed"
        )


@main.command("annotate-mgphot")
@click.option("--dataset", default=None, help="A build folder (default: the local build).")
@click.option(
    "--cache", type=click.Path(path_type=Path, file_okay=False), required=True, help="Answer cache folder."
)
@click.option(
    "--shard", default="0/1", show_default=True, help="i/n: annotate every n-th track from the i-th."
)
@click.option(
    "--limit", type=int, default=0, show_default=True, help="Only the N most played tracks (0: all)."
)
@click.option("--backend", type=click.Choice(["local", "http"]), default="local", show_default=True)
@click.option(
    "--model",
    default=None,
    help="Local: transformers folder or Hub name (default: packaged SmolLM2). http: served model.",
)
@click.option(
    "--url",
    default=None,
    help="OpenAI-compatible endpoint for --backend http, e.g. http://localhost:8000/v1.",
)
@click.option(
    "--lyrics-manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Give the LLM the lyrics too.",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def annotate_mgphot(
    dataset: str | None,
    cache: Path,
    shard: str,
    limit: int,
    backend: str,
    model: str | None,
    url: str | None,
    lyrics_manifest: Path | None,
    device: str,
    quiet: bool,
) -> None:
    """Annotate one shard of a build's tracks with MGPHot genes into an answer cache.

    Run one shard per machine or GPU with the same --cache layout, copy the cache folders
    together (that is the merge), then `mmbench build ... --annotate-mgphot --mgphot-cache DIR`
    publishes the mgphot config from the cache without asking again.
    """
    import mmbench
    from mmbench.builders import content, mgphot

    i, n = content.parse_shard(shard)
    tracks = mmbench.load("tracks", "catalog", source=dataset).to_polars()
    lyrics = content.read_lyrics_manifest(lyrics_manifest) if lyrics_manifest else None
    songs = mgphot.songs_to_annotate(tracks, lyrics, limit)
    name = mgphot.annotator_name(backend, model)
    answers = mgphot.AnswerCache(cache, name, shard=f"shard-{i}-of-{n}")
    done = 0
    if not all(answers.has(s) for k, s in enumerate(songs) if k % n == i):
        annotator = mgphot.make_annotator(backend, model=model, url=url, device=device)
        done = sum(1 for _ in mgphot.annotate(annotator, songs, answers, shard=(i, n), progress=not quiet))
    click.echo(f"shard {i}/{n}: {done:,} tracks annotated, answers in {answers.folder}")


@main.command("validate-mgphot")
@click.option(
    "--ground-truth",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Real MGPHot values (CSV/JSONL).",
)
@click.option(
    "--dataset", default=None, help="A build folder with the mgphot config (default: the local build)."
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the comparison as JSON.",
)
def validate_mgphot(ground_truth: Path, dataset: str | None, json_out: Path | None) -> None:
    """Compare a build's MGPHot annotations with real values: per-gene MAE and Spearman."""
    from rich.console import Console
    from rich.table import Table

    import mmbench
    from mmbench.builders import mgphot
    from mmbench.reporting import write_json

    truth = mgphot.read_ground_truth(ground_truth)
    annotations = mmbench.load("mgphot", "catalog", source=dataset).to_polars()
    result = mgphot.compare_with_ground_truth(annotations, truth)
    table = Table(title=f"MGPHot annotations vs {ground_truth} ({result['tracks']:,} tracks)")
    for column in ("gene", "category", "MAE", "Spearman"):
        table.add_column(column, justify="left" if column in ("gene", "category") else "right")
    for g in result["genes"]:
        table.add_row(g["gene"], g["category"], f"{g['mae']:.3f}", f"{g['spearman']:.3f}")
    table.add_row("mean", "", f"{result['mean_mae']:.3f}", f"{result['mean_spearman']:.3f}")
    Console().print(table)
    if json_out:
        write_json(json_out, result)


def _remove_failed_build(out: Path) -> None:
    """Remove what a failed first build wrote, except its embedding and annotation caches:
    they may hold hours of work, and with them the next try resumes."""
    caches = [out / ".build" / c for c in ("embedding-cache", "mgphot-cache")]
    if not any(c.exists() for c in caches):
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in [*out.iterdir(), *(out / ".build").iterdir()]:
        if entry.name == ".build" or entry in caches:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
def info(folder: Path) -> None:
    """Print a built dataset's statistics and check its integrity."""
    from mmbench.info import check_dataset, print_statistics

    problems = check_dataset(folder)
    print_statistics(folder)
    if problems:
        for problem in problems:
            click.echo(f"FAIL {problem}", err=True)
        sys.exit(1)
    click.echo("integrity: all checks passed")


@main.command()
@click.option("--check", type=click.Path(path_type=Path), help="Verify a downloaded archive or plays file.")
def download(check: Path | None) -> None:
    """Say where to get the LastFM-1K archive (it is never fetched), and check a local copy."""
    from mmbench.builders.ingest import ARCHIVE_NAME, LASTFM_PAGE, verify_download

    if check is None:
        click.echo(
            f"mmbench does not download LastFM-1K (its licence asks users to fetch it themselves).\n"
            f"Get {ARCHIVE_NAME} (about 640 MB) from {LASTFM_PAGE},\n"
            f"then check it with: mmbench download --check {ARCHIVE_NAME}\n"
            f"and build with:     mmbench build --raw {ARCHIVE_NAME} --out DIR"
        )
        return
    for line in verify_download(check):
        click.echo(line)


def _evaluation_options(command):
    options = [
        click.option(
            "--dataset",
            default=None,
            help="A build folder or Hub id (default: the local build, else mmbench/lastfm1k-mm).",
        ),
        click.option(
            "--task",
            type=click.Choice(["next-track", "paper-sampled"]),
            default="next-track",
            show_default=True,
        ),
        click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True),
        click.option(
            "--k",
            "ks",
            type=int,
            multiple=True,
            help="Cut-offs to report (repeatable; default 1 5 10 20 50 100).",
        ),
        click.option(
            "--allow-missing",
            is_flag=True,
            help="Score instances without a prediction as misses instead of failing.",
        ),
        click.option(
            "--bootstrap",
            "n_bootstrap",
            type=int,
            default=1000,
            show_default=True,
            help="Bootstrap resamples.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@_evaluation_options
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Also write the full report as JSON."
)
def evaluate(
    predictions: Path,
    dataset: str | None,
    task: str,
    split: str,
    ks: tuple[int, ...],
    allow_missing: bool,
    n_bootstrap: int,
    seed: int,
    json_out: Path | None,
) -> None:
    """Score a predictions file (JSON Lines, .jsonl.gz or parquet) with the official protocol."""
    from mmbench.evaluator import Evaluator
    from mmbench.metrics import KS
    from mmbench.reporting import print_report, write_json

    evaluator = Evaluator(task, split, dataset)
    report = evaluator.eval_file(
        predictions, allow_missing=allow_missing, ks=ks or KS, n_bootstrap=n_bootstrap, seed=seed
    )
    print_report(report)
    if json_out is not None:
        write_json(json_out, report.to_dict())
        click.echo(f"wrote {json_out}")


PREDICTION_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def _prediction_runs(path: Path, which: str) -> list[Path]:
    """The predictions files of one system: the file itself, or a folder's files in name order."""
    if not path.is_dir():
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(PREDICTION_SUFFIXES))
    if not runs:
        raise MmbenchError(
            f"{which} = {path}: a folder with no predictions file; expected one file per run "
            f"named *{', *'.join(PREDICTION_SUFFIXES)}"
        )
    return runs


@main.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@_evaluation_options
@click.option(
    "--permutations",
    "n_permutations",
    type=int,
    default=10_000,
    show_default=True,
    help="Randomization test draws.",
)
@click.option(
    "--segment",
    "segments",
    multiple=True,
    metavar="SEGMENT=GROUP",
    help="Compare on one group of the segment breakdown only, e.g. target_cold=cold or "
    "target_popularity=tail; given more than once, on the instances in every group named.",
)
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Also write the comparison as JSON."
)
def compare(
    a: Path,
    b: Path,
    dataset: str | None,
    task: str,
    split: str,
    ks: tuple[int, ...],
    allow_missing: bool,
    n_bootstrap: int,
    seed: int,
    n_permutations: int,
    segments: tuple[str, ...],
    json_out: Path | None,
) -> None:
    """Compare two systems on the same instances (B - A), with paired tests.

    A and B are each a predictions file, or a folder whose predictions files (*.jsonl,
    *.jsonl.gz, *.parquet) are runs of one system, e.g. one per training seed: an instance's
    metric is then its mean over the runs, and the tests stay paired over the instances.
    """
    import numpy as np

    from mmbench.compare import compare_ranks
    from mmbench.evaluator import Evaluator
    from mmbench.metrics import KS
    from mmbench.reporting import print_comparison, write_json

    evaluator = Evaluator(task, split, dataset)
    files = {"A": _prediction_runs(a, "A"), "B": _prediction_runs(b, "B")}
    ranks_a, ranks_b = (
        np.stack([evaluator.read_file(f, allow_missing=allow_missing).ranks for f in files[x]])
        for x in ("A", "B")
    )
    keep = np.ones(ranks_a.shape[1], dtype=bool)
    for segment in segments:
        name, _, group = segment.partition("=")
        groups = evaluator.segments().get(name, {})
        if group not in groups:
            known = ", ".join(f"{s}={g}" for s, gs in evaluator.segments().items() for g in gs)
            raise MmbenchError(f"--segment {segment!r}: unknown; this dataset has {known}")
        keep &= groups[group]
    if not keep.any():
        named = " --segment ".join(segments)
        where = "this group" if len(segments) == 1 else "all of these groups"
        raise MmbenchError(f"--segment {named}: no instance is in {where}")
    result = compare_ranks(
        ranks_a[:, keep], ranks_b[:, keep], sorted(set(ks or KS)), n_bootstrap, n_permutations, seed
    )
    result.update({"a": str(a), "b": str(b), "task": task, "split": split, "dataset": evaluator.source})
    result.update({"files_a": [str(f) for f in files["A"]], "files_b": [str(f) for f in files["B"]]})
    if segments:
        result["segment"] = " & ".join(segments)
    print_comparison(result)
    if json_out is not None:
        write_json(json_out, result)
        click.echo(f"wrote {json_out}")


@main.group()
def baseline() -> None:
    """Train baselines and write their predictions."""


@baseline.command("list")
def baseline_list() -> None:
    """The available baselines and their default hyperparameters."""
    from mmbench.baselines import BASELINES
    from mmbench.baselines.runner import model_config

    for name in BASELINES:
        config = model_config(name)
        settings = ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "description")
        click.echo(f"{name:12s} {config['description']}" + (f"  [{settings}]" if settings else ""))


@baseline.command("train")
@click.argument("name")
@click.option(
    "--dataset", default=None, help="A build folder or Hub id (default: the local build, else the Hub)."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hyperparameter.")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder for the trained baseline."
)
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch log.")
def baseline_train(
    name: str, dataset: str | None, overrides: tuple[str, ...], out: Path, quiet: bool
) -> None:
    """Train baseline NAME on the training sessions (neural ones: early stopping on validation)."""
    from mmbench.baselines.runner import train

    train(name, dataset, overrides, out, progress=not quiet)
    click.echo(f"trained {name} -> {out}")


@baseline.command("predict")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--task", type=click.Choice(["next-track", "paper-sampled"]), default="next-track", show_default=True
)
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True)
@click.option("--dataset", default=None, help="Predict on this build instead of the one it was trained on.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Predictions file (JSON Lines).")
@click.option("--device", default=None, help="Override the device of a neural model (auto, cpu, cuda).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def baseline_predict(
    model_dir: Path, task: str, split: str, dataset: str | None, out: Path, device: str | None, quiet: bool
) -> None:
    """Write the trained baseline's ranking of every instance."""
    from mmbench.baselines.runner import predict

    n = predict(model_dir, task, split, out, source=dataset, progress=not quiet, device=device)
    click.echo(f"wrote {n:,} {task} {split} predictions to {out}")
