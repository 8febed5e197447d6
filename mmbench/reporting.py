"""Human-readable tables (rich) and JSON files for evaluation reports and comparisons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mmbench.evaluator import Report
from mmbench.files import write_atomic
from mmbench.metrics import HEADLINE


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _cell(entry: Any) -> str:
    """A segment group's metric: its value and interval."""
    return f"{entry['value']:.4f} {_ci(entry)}"


def _ci(entry: dict[str, float]) -> str:
    return f"[{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]"


def print_report(report: Report, console: Console | None = None) -> None:
    """The evaluation report: headline, every metric with its interval and chance, segments."""
    console = console or _console()
    m = report.metrics
    console.print(
        f"[bold]{report.task}[/] on {report.split} of {report.dataset}: {report.n_predicted:,} of "
        f"{report.n_instances:,} instances predicted, catalogue {report.n_catalog:,} tracks"
    )
    if report.fingerprint:
        console.print(f"dataset fingerprint {report.fingerprint}", soft_wrap=True)
    console.print(
        "  ".join(f"[bold]{h.upper()} = {m[h]['value']:.4f}[/] {_ci(m[h])}" for h in HEADLINE if h in m)
    )
    table = Table(title="metrics (mean over instances, 95% bootstrap CI, chance = random ranking)")
    for column in ("metric", "value", "95% CI", "chance"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, entry in m.items():
        table.add_row(name, f"{entry['value']:.4f}", _ci(entry), f"{report.chance[name]:.4f}")
    for name, value in {**report.coverage, **report.beyond_accuracy}.items():
        table.add_row(name, f"{value:.4f}", "", "")
    console.print(table)
    if report.segments:
        seg = Table(title="segments (by the target)")
        for column in ("segment", "group", "n", *(f"{h}" for h in HEADLINE)):
            seg.add_column(column, justify="right" if column not in ("segment", "group") else "left")
        for segment, groups in report.segments.items():
            for group, entry in groups.items():
                cells = [_cell(entry[h]) if h in entry else "-" for h in HEADLINE]
                seg.add_row(segment, group, f"{entry['n']:,}", *cells)
        console.print(seg)
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")


def _system(result: dict[str, Any], which: str) -> str:
    runs = result.get(f"runs_{which}", 1)
    return result[which] + (f", mean of {runs} runs" if runs > 1 else "")


def print_comparison(result: dict[str, Any], console: Console | None = None) -> None:
    """The paired comparison table and a plain sentence on what is significant."""
    console = console or _console()
    table = Table(
        title=f"B - A on {result['n_instances']:,} {result['task']} {result['split']} instances"
        + (f" with {result['segment']}" if "segment" in result else "")
        + f" (A = {_system(result, 'a')}, B = {_system(result, 'b')})"
    )
    for column in ("metric", "A", "B", "B - A", "95% CI", "p rand.", "p t-test", "p Holm", "significant"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in result["metrics"]:
        table.add_row(
            row["metric"],
            f"{row['a']:.4f}",
            f"{row['b']:.4f}",
            f"{row['difference']:+.4f}",
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]",
            f"{row['p_randomization']:.4f}",
            f"{row['p_t_test']:.2g}",
            f"{row['p_randomization_holm']:.4f}",
            "yes" if row["significant"] else "no",
        )
    console.print(table)
    significant = [r for r in result["metrics"] if r["significant"]]
    n_metrics = len(result["metrics"])
    family = result.get("holm_family", n_metrics)
    over = (
        f"{n_metrics} metrics"
        if family == n_metrics
        else f"the {family} distinct statistics of {n_metrics} metrics"
    )
    if not significant:
        console.print(
            f"No difference is significant at {result['alpha']} (paired randomization test, Holm correction "
            f"over {over})."
        )
        return
    better = [r["metric"] for r in significant if r["difference"] > 0]
    worse = [r["metric"] for r in significant if r["difference"] < 0]
    if better:
        console.print(
            f"B is significantly better than A at {result['alpha']} (Holm over {over}) on: {', '.join(better)}."
        )
    if worse:
        console.print(
            f"B is significantly worse than A at {result['alpha']} (Holm over {over}) on: {', '.join(worse)}."
        )
    headline = [r for r in result["metrics"] if r["metric"] in HEADLINE and not r["significant"]]
    for r in headline:
        console.print(f"The difference on {r['metric']} is not significant.")


def print_mgphot_validation(result: dict[str, Any], source: str, console: Console | None = None) -> None:
    """Per-gene MAE and Spearman of a build's MGPHot annotations against real values."""
    console = console or _console()
    table = Table(title=f"MGPHot annotations vs {source} ({result['tracks']:,} tracks)")
    for column in ("gene", "category", "MAE", "Spearman"):
        table.add_column(column, justify="left" if column in ("gene", "category") else "right")
    for g in result["genes"]:
        table.add_row(g["gene"], g["category"], f"{g['mae']:.3f}", f"{g['spearman']:.3f}")
    table.add_row("mean", "", f"{result['mean_mae']:.3f}", f"{result['mean_spearman']:.3f}")
    console.print(table)
