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
@click.option("--dataset", default=None, help="Check the fingerprints of this build's entries (default with --recompute: the local build).")  # fmt: skip
@click.option(
    "--recompute", is_flag=True, help="Recompute every result of the dataset's entries from its predictions."
)
@click.option(
    "--allow-download", is_flag=True, help="Fetch remote predictions files (else those entries are skipped)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def validate(folder: Path, dataset: str | None, recompute: bool, allow_download: bool, quiet: bool) -> None:
    """Check the submissions of FOLDER (default: leaderboard): metadata, results and their
    digests, unique slugs, fingerprints, and with --recompute every number."""
    from mmbench.leaderboard.submissions import validate as check

    found = check(folder, dataset, recompute, allow_download, progress=not quiet)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    for problem in found.problems:
        click.echo(f"FAIL {problem}", err=True)
    recomputed = f", {found.recomputed} recomputed from their predictions" if recompute else ""
    click.echo(f"{len(found.entries)} submission(s) read{recomputed}, {len(found.problems)} problem(s)")
    if found.problems:
        sys.exit(1)


@leaderboard.command()
@click.argument("folder", type=LEADERBOARD, default=Path("leaderboard"))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the static site.")  # fmt: skip
@click.option("--dataset", default=None, help="A build: its tables get the paired comparisons with the best baseline.")  # fmt: skip
def build(folder: Path, out: Path, dataset: str | None) -> None:
    """Write the static leaderboard site (OUT/index.html, works offline) and the Markdown table
    of FOLDER/README.md from the submissions."""
    from mmbench.leaderboard.site import build_site

    page = build_site(folder, out, dataset)
    click.echo(f"wrote {page}")
