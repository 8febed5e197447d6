"""``mmbench leaderboard build``: a static site and a Markdown table, built only from the
submission folders.

The page is one HTML file with its style and script inline (no CDN, no server): a table per
dataset, task and split, sortable by any column and filterable by modality and backbone, a
segment view (cold, tail, heard before, ...), NDCG@10 with its 95% interval drawn as error
bars, the chance row, and each entry's paired comparison on NDCG@10 with the best baseline
(randomization test over instances, Holm-corrected over the entries of the table). Every
submitted text is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.compare import compare_ranks, holm
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator
from mmbench.files import write_atomic
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.submissions import Entry, read_entries
from mmbench.schema import TASKS

HEADLINE = "ndcg@10"
SHOWN = ("ndcg@10", "recall@10", "mrr@10")  # the headline first; the order of the table's columns
SEGMENT_VIEWS = (
    ("overall", None, None, "all instances"),
    ("cold", "target_cold", "true", "target never played in training"),
    ("coldnew", "target_cold_new", "true", "target never played in training nor by the user"),
    ("tail", "target_popularity", "tail", "target in the popularity tail"),
    ("heard", "target_heard_before", "true", "target heard by the user before"),
    ("new", "target_heard_before", "false", "target new to the user"),
)
README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"
DATASET_NAMES = {"lastfm1k-mm": "LastFM-1K-MM", "sample": "synthetic sample (not real data)"}


@dataclass
class Table:
    """The entries of one dataset build, task and split, best NDCG@10 first."""

    dataset: str
    fingerprint: str
    task: str
    split: str
    entries: list[Entry]
    comparisons: dict[str, dict[str, Any]]  # slug -> NDCG@10 difference with the best baseline

    @property
    def key(self) -> str:
        return f"{self.dataset}-{self.task}-{self.split}"

    @property
    def title(self) -> str:
        return f"{self.task}, {self.split} split — {DATASET_NAMES[self.dataset]}"


def _headline(entry: Entry, segment: str | None = None, group: str | None = None) -> dict[str, float] | None:
    mean = entry.results["mean"]
    if segment is None:
        return mean["metrics"][HEADLINE]
    return mean["segments"].get(segment, {}).get(group, {}).get(HEADLINE)


def group_tables(entries: list[Entry]) -> list[Table]:
    """Entries grouped by dataset, fingerprint, task and split; the real dataset first, tasks in
    their official order, test before validation, rows by NDCG@10."""
    keys = sorted(
        {
            (e.metadata.dataset, e.metadata.dataset_fingerprint, e.metadata.task, e.metadata.split)
            for e in entries
        },
        key=lambda k: (k[0] != "lastfm1k-mm", k[0], k[1], TASKS.index(k[2]), k[3] != "test"),
    )
    tables = []
    for dataset, fingerprint, task, split in keys:
        rows = [
            e
            for e in entries
            if (e.metadata.dataset, e.metadata.dataset_fingerprint, e.metadata.task, e.metadata.split)
            == (dataset, fingerprint, task, split)
        ]
        rows.sort(key=lambda e: (-_headline(e)["value"], e.slug))
        tables.append(Table(dataset, fingerprint, task, split, rows, {}))
    return tables


def paired_comparisons(table: Table, evaluator: Evaluator, n_permutations: int = 10_000) -> None:
    """Fill ``table.comparisons``: each entry against the table's best baseline on NDCG@10
    (paired over instances, runs averaged), p-values Holm-corrected over the entries. The
    protocol probes are not baselines to beat here: they are shown beside the models."""
    baselines = [e for e in table.entries if e.metadata.baseline and not e.metadata.probe]
    if not baselines:
        return
    best = baselines[0]  # rows are sorted by NDCG@10

    def ranks(entry: Entry) -> np.ndarray:
        files = [entry.folder / p["file"] for p in entry.results["predictions"]]
        return np.stack([evaluator.read_file(f).ranks for f in files])

    reference = ranks(best)
    others = [e for e in table.entries if e is not best]
    rows = []
    for entry in others:
        result = compare_ranks(
            reference, ranks(entry), ks=[10], n_bootstrap=1000, n_permutations=n_permutations
        )
        rows.append(next(r for r in result["metrics"] if r["metric"] == HEADLINE))
    adjusted = holm([r["p_randomization"] for r in rows]) if rows else []
    for entry, row, p in zip(others, rows, adjusted, strict=True):
        table.comparisons[entry.slug] = {
            "against": best.slug,
            "difference": row["difference"],
            "ci_low": row["ci_low"],
            "ci_high": row["ci_high"],
            "p_holm": p,
            "significant": p < 0.05,
        }


def build_site(leaderboard: Path, out: Path, dataset: str | None = None) -> Path:
    """Write ``out/index.html`` from the submissions of ``leaderboard`` and refresh the table in
    ``leaderboard/README.md``; with ``dataset`` (a build), tables of its fingerprint get the
    paired comparisons with the best baseline. Refuses a leaderboard that does not validate."""
    found = read_entries(leaderboard)
    if found.problems:
        raise MmbenchError(
            f"{leaderboard}: {len(found.problems)} problem(s); run `mmbench leaderboard validate`: {found.problems[0]}"
        )
    tables = group_tables(found.entries)
    if dataset is not None:
        fingerprint = dataset_fingerprint(dataset)
        for table in tables:
            if table.fingerprint == fingerprint:
                paired_comparisons(table, Evaluator(table.task, table.split, dataset))
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    write_atomic(page, page_html(tables))
    readme = leaderboard / "README.md"
    if readme.is_file():
        write_atomic(readme, with_markdown_tables(readme.read_text(encoding="utf-8"), tables))
    return page


# -- HTML --------------------------------------------------------------------------------------

e = html.escape


def _interval(cell: dict[str, float] | None) -> str:
    if not cell:
        return "—"
    return f"{cell['value']:.4f} <small>[{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]</small>"


def _comparison(table: Table, entry: Entry) -> tuple[str, str]:
    """(cell HTML, sort value) of an entry's comparison with the best baseline."""
    if any(c["against"] == entry.slug for c in table.comparisons.values()):
        return "best baseline", "0"
    c = table.comparisons.get(entry.slug)
    if c is None:
        return "—", "0"
    verdict = "significant" if c["significant"] else "not significant"
    text = f"{c['difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], p<sub>Holm</sub> = {c['p_holm']:.3g}"
    return f'<span class="{verdict.replace(" ", "-")}">{text} ({verdict})</span>', f"{c['difference']:.6f}"


def _point_class(entry: Entry) -> str:
    return "probe" if entry.metadata.probe else "baseline" if entry.metadata.baseline else "point"


def _row(table: Table, entry: Entry) -> str:
    meta, results = entry.metadata, entry.results
    metrics = results["mean"]["metrics"]
    coverage = np.mean([run["coverage"]["coverage@10"] for run in results["runs"]])
    beyond = results["mean"]["beyond_accuracy"]
    diversity = [v for k, v in sorted(beyond.items()) if k.startswith("diversity@10/")]
    comparison, comparison_key = _comparison(table, entry)
    tag = "probe" if meta.probe else "baseline" if meta.baseline else ""
    row_class = ' class="probe"' if meta.probe else ""
    name = e(meta.model) + (f' <span class="tag">{tag}</span>' if tag else "")
    code = (
        f"code: {e(meta.code.removeprefix('mmbench:'))} in mmbench"
        if meta.code.startswith("mmbench:")
        else f'<a href="{e(meta.code)}">code</a>'
    )
    links = code + (f' · <a href="{e(str(meta.paper))}">paper</a>' if meta.paper else "")
    views = "".join(
        f'<td class="num view view-{view}" data-value="{(_headline(entry, seg, grp) or {"value": -1})["value"]:.6f}">'
        f"{_interval(_headline(entry, seg, grp))}</td>"
        for view, seg, grp, _ in SEGMENT_VIEWS
    )
    return (
        f'<tr{row_class} data-modalities="{e(" ".join(meta.modalities))}" data-backbone="{e(meta.backbone or "none")}">'
        f'<td data-value="{e(meta.model.lower())}">{name}<br><small>{e(entry.slug)} · {links}</small></td>'
        f"{views}"
        + "".join(
            f'<td class="num" data-value="{metrics[m]["value"]:.6f}">{metrics[m]["value"]:.4f}</td>'
            for m in SHOWN[1:]
        )
        + f'<td class="num" data-value="{coverage:.6f}">{coverage:.4f}</td>'
        f'<td class="num" data-value="{beyond["novelty@10"]:.6f}">{beyond["novelty@10"]:.2f}</td>'
        f'<td class="num" data-value="{beyond["popularity_percentile@10"]:.6f}">{beyond["popularity_percentile@10"]:.3f}</td>'
        f'<td class="num" data-value="{diversity[0] if diversity else -1:.6f}">{" / ".join(f"{d:.3f}" for d in diversity) or "—"}</td>'
        f'<td data-value="{e(" ".join(meta.modalities))}">{e(", ".join(meta.modalities))}</td>'
        f'<td data-value="{e(meta.backbone or "")}">{e(meta.backbone or "—")}</td>'
        f'<td class="num" data-value="{meta.parameters or 0}">{_parameters(meta.parameters)}</td>'
        f'<td class="num" data-value="{meta.runs}">{meta.runs}</td>'
        f'<td class="num" data-value="{comparison_key}">{comparison}</td>'
        f'<td data-value="{meta.date.isoformat()}">{meta.date.isoformat()}</td>'
        "</tr>"
    )


def _parameters(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def error_bars_svg(table: Table) -> str:
    """NDCG@10 of every entry with its 95% interval, and the chance level as a dashed line."""
    rows = table.entries
    chance = rows[0].results["chance"][HEADLINE] if rows else 0.0
    top = max([_headline(r)["ci_high"] for r in rows] + [chance, 1e-9]) * 1.05
    label_w, plot_w, row_h = 260, 420, 22
    height = row_h * len(rows) + 40

    def x(v: float) -> float:
        return label_w + plot_w * v / top

    parts = [
        f'<svg class="error-bars" role="img" aria-label="NDCG@10 with 95% intervals" width="{label_w + plot_w + 20}" '
        f'height="{height}" viewBox="0 0 {label_w + plot_w + 20} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, entry in enumerate(rows):
        cell, y = _headline(entry), 20 + i * row_h
        parts.append(
            f'<g class="bar" data-slug="{e(entry.slug)}"><text x="{label_w - 8}" y="{y + 4}" text-anchor="end">{e(entry.metadata.model[:40])}</text>'
            f'<line x1="{x(cell["ci_low"]):.1f}" x2="{x(cell["ci_high"]):.1f}" y1="{y}" y2="{y}" class="ci"/>'
            f'<circle cx="{x(cell["value"]):.1f}" cy="{y}" r="4" class="{_point_class(entry)}"/>'
            f"<title>{e(entry.metadata.model)}: {cell['value']:.4f} [{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]</title></g>"
        )
    axis_y = height - 14
    parts.append(f'<line x1="{x(chance):.1f}" x2="{x(chance):.1f}" y1="8" y2="{axis_y - 6}" class="chance"/>')
    for tick in np.linspace(0, top, 5):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 10}" text-anchor="middle" class="tick">{tick:.3f}</text>'
        )
    parts.append(f'<text x="{x(chance) + 4:.1f}" y="14" class="tick">chance</text>')
    parts.append(
        f'<text x="{label_w - 24}" y="{axis_y + 10}" text-anchor="end" class="tick">NDCG@10</text></svg>'
    )
    return "".join(parts)


def _table_html(table: Table) -> str:
    modalities = sorted({m for r in table.entries for m in r.metadata.modalities})
    backbones = sorted({r.metadata.backbone or "none" for r in table.entries})
    chance = table.entries[0].results["chance"]
    configs = sorted(
        k for k in table.entries[0].results["mean"]["beyond_accuracy"] if k.startswith("diversity@10/")
    )
    diversity_configs = " / ".join(c.removeprefix("diversity@10/") for c in configs) or "no content config"
    view_headers = "".join(
        f'<th class="num view view-{view}" data-type="num" title="{e(help)}">NDCG@10 [95% CI]</th>'
        for view, _, _, help in SEGMENT_VIEWS
    )
    headers = (
        '<th data-type="text">Model</th>'
        + view_headers
        + '<th class="num" data-type="num">Recall@10</th><th class="num" data-type="num">MRR@10</th>'
        + '<th class="num" data-type="num">Coverage@10</th>'
        + '<th class="num" data-type="num" title="mean self-information of the top 10, bits">Novelty@10</th>'
        + '<th class="num" data-type="num" title="mean training-popularity percentile of the top 10">Popularity@10</th>'
        + f'<th class="num" data-type="num" title="mean pairwise cosine distance of the top 10">Diversity@10<br><small>{e(diversity_configs)}</small></th>'
        + '<th data-type="text">Modalities</th>'
        + '<th data-type="text">Backbone</th><th class="num" data-type="num">Parameters</th>'
        + '<th class="num" data-type="num">Runs</th><th class="num" data-type="num">vs best baseline (NDCG@10)</th>'
        + '<th data-type="text">Date</th>'
    )
    chance_views = "".join(
        f'<td class="num view view-{v}">{chance[HEADLINE]:.4f}</td>' for v, *_ in SEGMENT_VIEWS
    )
    chance_row = (
        f'<tr class="chance-row"><td>chance (random ranking)</td>{chance_views}'
        + "".join(f'<td class="num">{chance[m]:.4f}</td>' for m in SHOWN[1:])
        + "<td></td>" * 10
        + "</tr>"
    )
    options = lambda values: "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)  # noqa: E731
    view_options = "".join(f'<option value="{v}">{e(label)}</option>' for v, _, _, label in SEGMENT_VIEWS)
    return f"""
<section class="board" id="{e(table.key)}">
<h2>{e(table.title)}</h2>
<p class="meta">Dataset fingerprint <code>{e(table.fingerprint)}</code> · {len(table.entries)} entries</p>
<div class="controls">
<label>Modality <select class="filter-modality"><option value="">any</option>{options(modalities)}</select></label>
<label>Backbone <select class="filter-backbone"><option value="">any</option>{options(backbones)}</select></label>
<label>Segment <select class="segment-view">{view_options}</select></label>
</div>
{error_bars_svg(table)}
<table class="entries">
<thead><tr>{headers}</tr></thead>
<tbody>{"".join(_row(table, entry) for entry in table.entries)}</tbody>
<tfoot>{chance_row}</tfoot>
</table>
</section>"""


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:.9rem;margin-top:.5rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f4f4f4;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.num,th.num{text-align:right}.tag{background:#e8eefc;border-radius:3px;font-size:.75rem;padding:0 .3rem}
.chance-row td{color:#777;font-style:italic}.controls label{margin-right:1rem}
.view{display:none}.board[data-view=overall] .view-overall,.board[data-view=cold] .view-cold,
.board[data-view=tail] .view-tail,.board[data-view=heard] .view-heard,.board[data-view=new] .view-new,
.board[data-view=coldnew] .view-coldnew{display:table-cell}tr.probe td{background:#fbf7ee}
svg .ci{stroke:#444;stroke-width:2}svg .point{fill:#1f77b4}svg .baseline{fill:#ff7f0e}svg .probe{fill:#999}
svg .chance{stroke:#c00;stroke-dasharray:4 3}svg text{font-size:11px}.significant{font-weight:600}
.banner{background:#fff4e0;border:1px solid #f0c36d;padding:.5rem 1rem}
"""

SCRIPT = """
document.querySelectorAll('.board').forEach(function (board) {
  board.dataset.view = 'overall';
  var body = board.querySelector('tbody');
  function applyFilters() {
    var modality = board.querySelector('.filter-modality').value;
    var backbone = board.querySelector('.filter-backbone').value;
    body.querySelectorAll('tr').forEach(function (row) {
      var okM = !modality || row.dataset.modalities.split(' ').indexOf(modality) >= 0;
      var okB = !backbone || row.dataset.backbone === backbone;
      row.hidden = !(okM && okB);
    });
  }
  board.querySelector('.filter-modality').addEventListener('change', applyFilters);
  board.querySelector('.filter-backbone').addEventListener('change', applyFilters);
  board.querySelector('.segment-view').addEventListener('change', function (event) {
    board.dataset.view = event.target.value;
  });
  board.querySelectorAll('thead th').forEach(function (th, index) {
    th.addEventListener('click', function () {
      var descending = !th.classList.contains('sorted-desc');
      board.querySelectorAll('thead th').forEach(function (o) { o.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(descending ? 'sorted-desc' : 'sorted-asc');
      var numeric = th.dataset.type === 'num';
      var rows = Array.prototype.slice.call(body.querySelectorAll('tr'));
      rows.sort(function (a, b) {
        var x = a.children[index].dataset.value, y = b.children[index].dataset.value;
        var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return descending ? -c : c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def page_html(tables: list[Table]) -> str:
    """The whole leaderboard page."""
    sample = any(t.dataset == "sample" for t in tables)
    banner = (
        '<p class="banner">Tables marked <em>synthetic sample</em> score the baselines on the embedded synthetic '
        "sample: they show that the pipeline works, not how the models compare on real listening data.</p>"
        if sample
        else ""
    )
    body = "".join(_table_html(t) for t in tables) or "<p>No submissions yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LastFM-1K-MM leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>LastFM-1K-MM leaderboard</h1>
<p>Every number is recomputed from the submitted predictions by the official evaluator
(<code>mmbench leaderboard validate --recompute</code>). Intervals are 95% percentile bootstraps over
instances (for several runs, of the mean over runs). The comparison column is the paired randomization test
of each entry against the best baseline of its table on NDCG@10, Holm-corrected over the entries.
Rows tagged <em>probe</em> are protocol probes: rules with no model and no content that exploit what the
protocol lets anyone know (<code>history-lookup</code>: the user's heard tracks by recency;
<code>unseen-first</code>: the catalogue tracks nobody has played yet, certain to be played later). A
model's gain, on any segment, means something only above them; the segment view shows both.</p>
{banner}{body}
<script>{SCRIPT}</script></body></html>
"""


# -- Markdown ------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def markdown_tables(tables: list[Table]) -> str:
    """The leaderboard as Markdown tables (one per dataset, task and split)."""
    parts = []
    for table in tables:
        parts.append(f"\n### {_md(table.title)}\n")
        parts.append(
            "| Model | NDCG@10 [95% CI] | Recall@10 | MRR@10 | Modalities | Runs | vs best baseline |"
        )
        parts.append("|---|---:|---:|---:|---|---:|---|")
        for entry in table.entries:
            metrics = entry.results["mean"]["metrics"]
            c = table.comparisons.get(entry.slug)
            versus = f"{c['difference']:+.4f} (p<sub>Holm</sub> {c['p_holm']:.3g})" if c else ""
            if any(other["against"] == entry.slug for other in table.comparisons.values()):
                versus = "best baseline"
            probe = " *(probe)*" if entry.metadata.probe else ""
            parts.append(
                f"| {_md(entry.metadata.model)}{probe} | {metrics[HEADLINE]['value']:.4f} [{metrics[HEADLINE]['ci_low']:.4f}, "
                f"{metrics[HEADLINE]['ci_high']:.4f}] | {metrics['recall@10']['value']:.4f} | {metrics['mrr@10']['value']:.4f} "
                f"| {_md(', '.join(entry.metadata.modalities))} | {entry.metadata.runs} | {versus} |"
            )
        chance = table.entries[0].results["chance"]
        parts.append(
            f"| *chance* | {chance[HEADLINE]:.4f} | {chance['recall@10']:.4f} | {chance['mrr@10']:.4f} | | | |"
        )
    return "\n".join(parts) + "\n"


def with_markdown_tables(readme: str, tables: list[Table]) -> str:
    """``readme`` with the text between the leaderboard markers replaced by the tables."""
    block = f"{README_START}\n{markdown_tables(tables)}{README_END}"
    if README_START in readme and README_END in readme:
        return re.sub(
            re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: block, readme, flags=re.S
        )
    return readme.rstrip("\n") + "\n\n" + block + "\n"
