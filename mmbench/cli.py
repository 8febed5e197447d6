"""The ``mmbench`` command line: each command parses, calls one library function and prints.

Subcommands import their heavy modules lazily, so that ``mmbench evaluate`` never loads torch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from mmbench.builders.kinds import KINDS, MANIFEST_KINDS
from mmbench.errors import MmbenchError
from mmbench.export import EXPORTERS
from mmbench.leaderboard import cli as leaderboard_cli
from mmbench.schema import TASKS

FILE = click.Path(path_type=Path, dir_okay=False)
FOLDER = click.Path(path_type=Path, file_okay=False)


class _Group(click.Group):
    """Turns :class:`MmbenchError` into one line on stderr and exit code 2, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MmbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


def _options(*options: Callable) -> Callable:
    """Apply a group of click options, shared by several commands, in the order given."""

    def apply(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def _log_to_stderr() -> None:
    """Show the package's progress log (stage times, cache reuse) on stderr, one message a line."""
    logger = logging.getLogger("mmbench")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _write_json(path: Path | None, data: dict) -> None:
    """Write a command's full result as JSON when ``--json PATH`` was given."""
    if path is not None:
        from mmbench.reporting import write_json

        write_json(path, data)
        click.echo(f"wrote {path}")


_content_options = _options(
    *(click.option(f"--{k.name}-manifest", type=FILE, help=k.manifest_help) for k in MANIFEST_KINDS),
    *(click.option(f"--{k.name}-encoder", default=None, help=f"{k.encoder_help} Default: the recipe's enrich.{k.recipe_key}.") for k in KINDS),
    click.option("--audio-model", default=None, help="A Hub name or local folder replacing the audio encoder's default model."),
    click.option("--trust-remote-code", is_flag=True, help="Allow encoders whose model code lives on the Hub (MERT)."),
)  # fmt: skip


def _content_choices(values: dict[str, Any]) -> tuple[dict[str, Path | None], dict[str, str | None]]:
    """The content options a command received, taken out of ``values``: the manifests and the
    encoders by kind name (None where not given)."""
    manifests = {k.name: values.pop(f"{k.name}_manifest") for k in MANIFEST_KINDS}
    return manifests, {k.name: values.pop(f"{k.name}_encoder") for k in KINDS}


def _annotator_options(prefix: str, backend: str | None, limit: int | None) -> Callable:
    """The MGPHot annotator; the build names its options ``--mgphot-*``, and ``None`` defaults
    there leave the recipe's choice."""
    return _options(
        click.option(
            f"--{prefix}limit", "limit", type=int, default=limit, show_default=True,
            help="Annotate only the N most played tracks (0: all).",
        ),
        click.option(
            f"--{prefix}backend", "backend", type=click.Choice(["local", "http"]), default=backend,
            show_default=True, help="LLM backend of the annotator.",
        ),
        click.option(
            f"--{prefix}model", "model", default=None,
            help="local: a transformers folder or Hub name (default: the packaged SmolLM2); http: the served model.",
        ),
        click.option(f"--{prefix}url", "url", default=None, help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."),
    )  # fmt: skip


_device_option = partial(click.option, "--device", default="auto", show_default=True, help="Device of the encoders and LLMs (auto = CUDA if present).")  # fmt: skip
_dataset_option = partial(click.option, "--dataset", default=None, help="A build folder or Hub id (default: the local build, else the Hub).")  # fmt: skip
_quiet_option = partial(click.option, "--quiet", is_flag=True, help="No progress bars.")


@click.group(cls=_Group)
@click.version_option(package_name="mmbench")
def main() -> None:
    """LastFM-1K-MM: build the dataset, inspect it, evaluate predictions."""


@main.command()
@_options(
    click.option("--sample", is_flag=True, help="Build from the embedded synthetic sample."),
    click.option("--raw", type=click.Path(path_type=Path), help="lastfm-dataset-1K.tar.gz, its extracted folder, or the plays TSV."),
    click.option("--recipe", default=None, help="A built-in recipe (official, paper, sample) or a .toml file. Default: official, or sample with --sample."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. filters.min_user_plays=500."),
    click.option("--durations", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Manifest of track durations (artist_name, track_name, duration_seconds)."),
    _content_options,
    _device_option(),
    click.option("--embedding-cache", type=FOLDER, default=None, help="Embedding cache folder (default: OUT/.build/embedding-cache); `mmbench embed` shards fill it."),
    click.option("--annotate-mgphot", is_flag=True, help="Add the mgphot config (shortcut for --set enrich.annotate_mgphot=true)."),
    _annotator_options("mgphot-", backend=None, limit=None),
    click.option("--mgphot-cache", type=FOLDER, default=None, help="Answer cache folder (default: OUT/.build/mgphot-cache)."),
    click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: the local dataset location that mmbench.load looks at first)."),
    _quiet_option(help="No progress bars and no stage log; errors and warnings still print."),
)  # fmt: skip
def build(sample: bool, raw: Path | None, recipe: str | None, overrides: tuple[str, ...], durations: Path | None,
          audio_model: str | None, trust_remote_code: bool, device: str, embedding_cache: Path | None,
          annotate_mgphot: bool, limit: int | None, backend: str | None, model: str | None, url: str | None,
          mgphot_cache: Path | None, out: Path | None, quiet: bool, **content: Any) -> None:  # fmt: skip
    """Build the dataset folder from the raw LastFM-1K files or from the synthetic sample."""
    from mmbench.builders import pipeline
    from mmbench.builders.ingest import checksum_warnings
    from mmbench.builders.recipe import enrich_overrides, load_recipe
    from mmbench.builders.sample import SampleConfig
    from mmbench.loading import default_local_dir

    if sample == (raw is not None):
        raise MmbenchError("give exactly one of --sample or --raw PATH")
    if not quiet:
        _log_to_stderr()
    manifests, encoders = _content_choices(content)
    shortcuts = enrich_overrides(
        **{f"{kind}_encoder": encoder for kind, encoder in encoders.items()}, annotate_mgphot=annotate_mgphot or None,
        mgphot_limit=limit, mgphot_backend=backend, mgphot_model=model,
    )  # fmt: skip
    chosen = load_recipe(recipe or ("sample" if sample else "official"), (*overrides, *shortcuts))
    out = out or default_local_dir()
    encoder = {"model": audio_model, "device": device, "trust_remote_code": trust_remote_code, "cache": embedding_cache}  # fmt: skip
    report = pipeline.build_folder(
        out, chosen, raw=raw, sample_config=SampleConfig() if sample else None, durations_path=durations,
        manifests=manifests, encoder_options=encoder,
        mgphot_options={"url": url, "cache": mgphot_cache, "device": device}, progress=not quiet,
    )  # fmt: skip
    for message in checksum_warnings(report) if not sample else []:
        click.echo(f"warning: {message}", err=True)
    click.echo(pipeline.build_summary(out, report))


@main.command("embed")
@_dataset_option(help="A build folder (default: the local build).")
@click.option("--cache", type=FOLDER, required=True, help="Embedding cache folder.")
@click.option("--shard", default="0/1", show_default=True, help="i/n: embed every n-th track from the i-th.")
@_content_options
@_device_option()
@_quiet_option()
def embed(dataset: str | None, cache: Path, shard: str, audio_model: str | None, trust_remote_code: bool,
          device: str, quiet: bool, **content: Any) -> None:  # fmt: skip
    """Embed one shard of a build's content (a manifest's audio or lyrics, or a kind made from the
    catalogue such as text, given its --<kind>-encoder) into an embedding cache.

    Run one shard per machine or GPU, copy the cache folders together (that is the merge), then
    `mmbench build ... --audio-manifest ... --embedding-cache DIR` publishes from the cache.
    Encoders not given are the official recipe's.
    """
    from mmbench.builders.content import embed_shard
    from mmbench.builders.recipe import load_recipe

    options = {"model": audio_model, "device": device, "trust_remote_code": trust_remote_code}
    manifests, given = _content_choices(content)
    official = load_recipe("official").enrich
    encoders = {
        k.name: given[k.name] or (getattr(official, k.recipe_key) if k.from_catalog is None else "")
        for k in KINDS
    }
    for line in embed_shard(dataset, manifests, encoders, options, cache, shard, progress=not quiet):
        click.echo(line)


@main.command("annotate-mgphot")
@_dataset_option(help="A build folder (default: the local build).")
@click.option("--cache", type=FOLDER, required=True, help="Answer cache folder.")
@click.option("--shard", default="0/1", show_default=True, help="i/n: annotate every n-th track from the i-th.")  # fmt: skip
@_annotator_options("", backend="local", limit=0)
@click.option("--lyrics-manifest", type=FILE, default=None, help="Give the LLM the lyrics too.")
@_device_option()
@_quiet_option()
def annotate_mgphot(dataset: str | None, cache: Path, shard: str, limit: int, backend: str, model: str | None,
                    url: str | None, lyrics_manifest: Path | None, device: str, quiet: bool) -> None:  # fmt: skip
    """Annotate one shard of a build's tracks with MGPHot genes into an answer cache.

    Run one shard per machine or GPU with the same --cache layout, copy the cache folders
    together (that is the merge), then `mmbench build ... --annotate-mgphot --mgphot-cache DIR`
    publishes the mgphot config from the cache without asking again.
    """
    from mmbench.builders.mgphot import annotate_shard

    click.echo(annotate_shard(dataset, cache, shard, backend, model, url, limit, lyrics_manifest, device, not quiet))  # fmt: skip


@main.command("validate-mgphot")
@click.option("--ground-truth", type=FILE, required=True, help="Real MGPHot values (CSV/JSONL).")
@_dataset_option(help="A build folder with the mgphot config (default: the local build).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the comparison as JSON.")  # fmt: skip
def validate_mgphot(ground_truth: Path, dataset: str | None, json_out: Path | None) -> None:
    """Compare a build's MGPHot annotations with real values: per-gene MAE and Spearman."""
    import mmbench
    from mmbench.builders import mgphot
    from mmbench.reporting import print_mgphot_validation

    annotations = mmbench.load("mgphot", "catalog", source=dataset).to_polars()
    result = mgphot.compare_with_ground_truth(annotations, mgphot.read_ground_truth(ground_truth))
    print_mgphot_validation(result, str(ground_truth))
    _write_json(json_out, result)


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
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--repo", required=True, help="The Hub dataset repository, ORG/NAME.")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option(
    "--dry-run", is_flag=True, help="List the files, their sizes and the card's metadata; upload nothing."
)
@click.option("--allow-sample", is_flag=True, help="Push a build not made from the published LastFM-1K files to a repository whose name does not say sample (tests).")  # fmt: skip
def push(folder: Path, repo: str, private: bool, dry_run: bool, allow_sample: bool) -> None:
    """Upload a checked build folder to the Hub, gated by the LastFM-1K terms (resumable), and
    tag its version."""
    from mmbench import push as hub

    lines = (
        hub.dry_run(folder, repo, allow_sample) if dry_run else hub.push(folder, repo, private, allow_sample)
    )
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(EXPORTERS)), required=True)
@click.option("--out", type=FOLDER, required=True, help="The folder to write (replaced whole).")
def export(folder: Path, fmt: str, out: Path) -> None:
    """Write a build folder in another toolkit's format, with the benchmark's split."""
    from mmbench.export import export as write_export
    from mmbench.export import session_rec_unseen

    for path in write_export(folder, fmt, out):
        click.echo(f"wrote {path}")
    if fmt == "session-rec":
        click.echo(f"note: {session_rec_unseen(folder)}")


@main.command()
@click.option("--check", type=click.Path(path_type=Path), help="Verify a downloaded archive or plays file.")
def download(check: Path | None) -> None:
    """Say where to get the LastFM-1K archive (it is never fetched), and check a local copy."""
    from mmbench.builders.ingest import DOWNLOAD_INSTRUCTIONS, verify_download

    for line in verify_download(check) if check else [DOWNLOAD_INSTRUCTIONS]:
        click.echo(line)


@main.command()
@_options(
    click.option("--raw", type=click.Path(path_type=Path, exists=True), help="lastfm-dataset-1K.tar.gz, its extracted folder, or the plays TSV."),
    click.option("--sample", is_flag=True, help="Reproduce on the embedded synthetic sample instead."),
    click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder of every step's output (a rerun resumes from it)."),
    click.option("--models", default="all", show_default=True, help="Comma-separated baselines, or all (the LLM ones run only with a GPU or --endpoint)."),
    click.option("--seeds", type=int, default=1, show_default=True, help="Training runs of each neural baseline."),
    _device_option(),
    click.option("--endpoint", default=None, help="An OpenAI-compatible server's URL for the zero-shot ranker."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a build recipe key."),
    click.option("--set-model", "model_overrides", multiple=True, metavar="MODEL:KEY=VALUE", help="Override a baseline's hyperparameter, e.g. sasrec:epochs=5."),
    click.option("--plan", "plan_only", is_flag=True, help="Print the steps with their estimated time and memory, and stop."),
)  # fmt: skip
def reproduce(raw: Path | None, sample: bool, out: Path, models: str, seeds: int, device: str, endpoint: str | None,
              overrides: tuple[str, ...], model_overrides: tuple[str, ...], plan_only: bool) -> None:  # fmt: skip
    """Build, train every baseline that fits this machine, predict both tasks, evaluate, compare
    with the reference and the probes, and write the results table and leaderboard entries."""
    from mmbench import reproduce as run
    from mmbench.baselines import BASELINES

    if sample == (raw is not None):
        raise MmbenchError("give exactly one of --sample or --raw PATH")
    everything = [*run.PROBES, *run.CLASSIC, *run.NEURAL, "e4srec", "zeroshot"]
    chosen = everything if models == "all" else [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in BASELINES]
    if unknown or not chosen:
        raise MmbenchError(f"--models: unknown baseline(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(BASELINES)}")  # fmt: skip
    if seeds < 1:
        raise MmbenchError(f"--seeds: expected at least 1, got {seeds}")
    per_model: dict[str, list[str]] = {}
    for item in model_overrides:
        model, colon, setting = item.partition(":")
        if not colon or "=" not in setting or model not in chosen:
            raise MmbenchError(f"--set-model {item!r}: expected MODEL:KEY=VALUE with MODEL one of {', '.join(chosen)}")  # fmt: skip
        per_model.setdefault(model, []).append(setting)
    build_args = [x for o in overrides for x in ("--set", o)]
    if plan_only:
        from mmbench.devices import resolve_device

        cuda = resolve_device(device).startswith("cuda")
        settings = run.model_settings(chosen, raw, cuda, device, out / "dataset", per_model)
        plan = run.make_plan(out, raw, chosen, seeds, cuda, endpoint, build_args, settings)
        click.echo(run.plan_table(plan, run.Sizes.of(out / "dataset", raw), run.read_costs(out)))
        return
    run.reproduce(out, raw, chosen, seeds, device, endpoint, build_args, per_model, click.echo)


_task_options = _options(
    click.option("--task", type=click.Choice(TASKS), default=TASKS[0], show_default=True),
    click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True),
)


_evaluation_options = _options(
    _dataset_option(help="A build folder or Hub id (default: the local build, else mmbench/lastfm1k-mm)."),
    _task_options,
    click.option("--k", "ks", type=int, multiple=True, help="Cut-offs to report (repeatable; default 1 5 10 20 50 100)."),
    click.option("--allow-missing", is_flag=True, help="Score instances without a prediction as misses instead of failing."),
    click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling."),
)  # fmt: skip


@main.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@_evaluation_options
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the full report as JSON.")  # fmt: skip
def evaluate(predictions: Path, dataset: str | None, task: str, split: str, ks: tuple[int, ...], allow_missing: bool,
             n_bootstrap: int, seed: int, json_out: Path | None) -> None:  # fmt: skip
    """Score a predictions file (JSON Lines, .jsonl.gz or parquet) with the official protocol."""
    from mmbench.evaluator import Evaluator
    from mmbench.metrics import KS
    from mmbench.reporting import print_report

    evaluator = Evaluator(task, split, dataset)
    report = evaluator.eval_file(
        predictions, allow_missing=allow_missing, ks=ks or KS, n_bootstrap=n_bootstrap, seed=seed
    )
    print_report(report)
    _write_json(json_out, report.to_dict())


@main.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@_options(
    _evaluation_options,
    click.option("--permutations", "n_permutations", type=int, default=10_000, show_default=True, help="Randomization test draws."),
    click.option("--segment", "segments", multiple=True, metavar="COLUMN=VALUE", help="Compare on the instances whose label column has this value only (the instances config's target_* columns), e.g. target_cold=true, target_heard_before=false or target_popularity=tail; given more than once, on the instances that match every one."),
    click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the comparison as JSON."),
)  # fmt: skip
def compare(a: Path, b: Path, dataset: str | None, task: str, split: str, ks: tuple[int, ...], allow_missing: bool,
            n_bootstrap: int, seed: int, n_permutations: int, segments: tuple[str, ...],
            json_out: Path | None) -> None:  # fmt: skip
    """Compare two systems on the same instances (B - A), with paired tests.

    A and B are each a predictions file, or a folder whose predictions files (*.jsonl,
    *.jsonl.gz, *.parquet) are runs of one system, e.g. one per training seed: an instance's
    metric is then its mean over the runs, and the tests stay paired over the instances.
    """
    from mmbench.compare import compare_systems
    from mmbench.evaluator import Evaluator
    from mmbench.metrics import KS
    from mmbench.reporting import print_comparison

    result = compare_systems(
        Evaluator(task, split, dataset), a, b, ks=ks or KS, segments=segments, allow_missing=allow_missing,
        n_bootstrap=n_bootstrap, n_permutations=n_permutations, seed=seed,
    )  # fmt: skip
    print_comparison(result)
    _write_json(json_out, result)


main.add_command(leaderboard_cli.submit)
main.add_command(leaderboard_cli.leaderboard)


@main.group()
def baseline() -> None:
    """Train baselines and write their predictions."""


@baseline.command("list")
def baseline_list() -> None:
    """The available baselines and their default hyperparameters."""
    from mmbench.baselines.runner import describe_baselines

    for line in describe_baselines():
        click.echo(line)


@baseline.command("train")
@click.argument("name")
@_dataset_option()
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hyperparameter.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the trained baseline.")  # fmt: skip
@_quiet_option(help="No progress bars or per-epoch log.")
def baseline_train(name: str, dataset: str | None, overrides: tuple[str, ...], out: Path, quiet: bool) -> None:  # fmt: skip
    """Train baseline NAME on the training sessions (neural ones: early stopping on validation)."""
    from mmbench.baselines.runner import train

    train(name, dataset, overrides, out, progress=not quiet)
    click.echo(f"trained {name} -> {out}")


@baseline.command("predict")
@click.argument("model_dir", type=click.Path(path_type=Path))
@_task_options
@_dataset_option(help="Predict on this build instead of the one it was trained on.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Predictions file (JSON Lines).")
@click.option("--device", default=None, help="Override the device of a neural model (auto, cpu, cuda).")
@click.option("--keep-prefix", is_flag=True, help="Ablation: rank the session prefix too, on a build whose target can never repeat it (what the baselines did before dataset version 2.0.0).")  # fmt: skip
@_quiet_option()
def baseline_predict(model_dir: Path, task: str, split: str, dataset: str | None, out: Path, device: str | None,
                     keep_prefix: bool, quiet: bool) -> None:  # fmt: skip
    """Write the trained baseline's ranking of every instance."""
    from mmbench.baselines.runner import predict

    n = predict(
        model_dir,
        task,
        split,
        out,
        source=dataset,
        progress=not quiet,
        device=device,
        keep_prefix=keep_prefix,
    )
    click.echo(f"wrote {n:,} {task} {split} predictions to {out}")
