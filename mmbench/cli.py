"""The ``mmbench`` command line. Subcommands import their heavy modules lazily."""

from __future__ import annotations

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
    out: Path | None,
    quiet: bool,
) -> None:
    """Build the dataset folder from the raw LastFM-1K files or from the synthetic sample."""
    from mmbench.builders.recipe import load_recipe
    from mmbench.loading import default_local_dir

    if sample == (raw is not None):
        raise MmbenchError("give exactly one of --sample or --raw PATH")
    recipe_dict = load_recipe(recipe or ("sample" if sample else "official"), overrides)
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
            progress=not quiet,
            log=(lambda message: None) if quiet else (lambda message: click.echo(message, err=True)),
        )
    except MmbenchError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    from mmbench.builders.ingest import warn_on_checksums

    for message in warn_on_checksums(report) if not sample else []:
        click.echo(f"warning: {message}", err=True)
    stats = report["statistics"]
    click.echo(
        f"built {out}: {stats['plays']:,} plays, {stats['sessions']:,} sessions, "
        f"{stats['users']:,} users, {stats['tracks']:,} tracks"
    )


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
