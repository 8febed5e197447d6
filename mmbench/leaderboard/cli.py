"""``mmbench submit`` and ``mmbench leaderboard validate|build``: parse, call one function, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

LEADERBOARD = click.Path(path_type=Path, file_okay=False)


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path, exists=True))
@click.option("--meta", "metadata", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The submission's metadata.yaml (see leaderboard/README.md).")  # fmt: skip
@click.option("--dataset", default=None, help="The build the predictions are for (default: the local build, else the Hub).")  # fmt: skip
@click.option("--leaderboard", type=LEADERBOARD, default=Path("leaderboard"), show_default=True, help="The leaderboard folder.")  # fmt: skip
@click.option(
    "--slug", default=None, help="The submission's folder name (default: from the model name and task)."
)
def submit(
    predictions: Path, metadata: Path, dataset: str | None, leaderboard: Path, slug: str | None
) -> None:
    """Check, score and add a submission: PREDICTIONS is a predictions file or a folder of runs
    (one file per seed). Writes LEADERBOARD/submissions/SLUG/ with the metadata, the predictions
    as .jsonl.gz and results.json."""
    from mmbench.leaderboard.submissions import submit as write_submission

    folder, results = write_submission(predictions, metadata, leaderboard, dataset, slug)
    ndcg = results["mean"]["metrics"]["ndcg@10"]
    click.echo(
        f"wrote {folder}: {results['model']} on {results['task']} {results['split']}, {len(results['runs'])} run(s), "
        f"NDCG@10 {ndcg['value']:.4f} [{ndcg['ci_low']:.4f}, {ndcg['ci_high']:.4f}]"
    )


@click.group()
def leaderboard() -> None:
    """Validate the submissions and build the leaderboard site."""


@leaderboard.command()
@click.argument("folder", type=LEADERBOARD, default=Path("leaderboard"))
@click.option("--dataset", "datasets", multiple=True, help="A build whose entries are checked (repeatable: the sample and the real data). Default with --recompute: the local build.")  # fmt: skip
@click.option(
    "--recompute",
    is_flag=True,
    help="Recompute every result of the given builds' entries from their predictions.",
)
@click.option(
    "--allow-download", is_flag=True, help="Fetch remote predictions files (https only, size-capped)."
)
@click.option("--skip-missing", is_flag=True, help="Entries of a dataset with no build given (and remote files not fetched) are notes, not failures; their schema, files and digests are still checked.")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
def validate(
    folder: Path,
    datasets: tuple[str, ...],
    recompute: bool,
    allow_download: bool,
    skip_missing: bool,
    quiet: bool,
) -> None:
    """Check the submissions of FOLDER (default: leaderboard): metadata, results and their
    digests, file names, duplicates, the baselines file, fingerprints, and with --recompute
    every number. An entry whose build is not given fails unless --skip-missing."""
    from mmbench.leaderboard.submissions import check_leaderboard

    found = check_leaderboard(folder, datasets, recompute, allow_download, skip_missing, progress=not quiet)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    for problem in found.problems:
        click.echo(f"FAIL {problem}", err=True)
    recomputed = f", {found.recomputed} recomputed from their predictions" if recompute else ""
    click.echo(f"{found.read} submission(s) read{recomputed}, {len(found.problems)} problem(s)")
    if found.problems:
        sys.exit(1)


@leaderboard.command()
@click.argument("folder", type=LEADERBOARD, default=Path("leaderboard"))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the static site.")  # fmt: skip
@click.option("--dataset", "datasets", multiple=True, required=True, help="A build to recompute its entries against (repeatable); entries of builds not given are listed apart.")  # fmt: skip
@click.option(
    "--allow-download", is_flag=True, help="Fetch remote predictions files (https only, size-capped)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build(folder: Path, out: Path, datasets: tuple[str, ...], allow_download: bool, quiet: bool) -> None:
    """Recompute every entry of FOLDER from its predictions and write the static site
    (OUT/index.html, works offline) and the Markdown tables of FOLDER/README.md; entries that
    cannot be recomputed are listed apart, with why."""
    from mmbench.leaderboard.site import build_site

    page, found = build_site(folder, out, datasets, allow_download, progress=not quiet)
    for slug, why in sorted(found.excluded.items()):
        click.echo(f"not shown: {slug}: {why}", err=True)
    click.echo(f"wrote {page}: {len(found.scored)} entries recomputed, {len(found.excluded)} not shown")
