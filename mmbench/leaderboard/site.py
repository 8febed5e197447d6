"""``mmbench leaderboard build``: a static site and a Markdown table, every number recomputed.

The build never reads a number from a submission folder: it recomputes each entry's results
from its predictions against the builds it is given (:func:`~.submissions.check_leaderboard`),
and shows only the entries it recomputed without a problem; the others are listed apart, each
with why. The page is one HTML file with its style and script inline (no CDN, no server): a
table per build, task and split, sortable by any column and filterable by modality and
backbone; a segment view (cold, tail, heard before, ...) that re-sorts the table and redraws
NDCG@10, Recall@10, MRR@10 and the chart for the segment; NDCG@10 with its 95% interval as
error bars; the chance row; and each entry's paired comparison with its table's reference
baseline (named in ``leaderboard/baselines.yaml``), Holm-corrected over the entry's own
metrics, so that adding an entry changes no other entry's verdict. Every submitted text is
escaped.
"""

from __future__ import annotations

import datetime
import html
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.compare import compare_ranks
from mmbench.files import write_atomic
from mmbench.leaderboard.rules import RULES, Rules
from mmbench.leaderboard.submissions import Scored, Validation, check_leaderboard
from mmbench.schema import TASKS

HEADLINE = "ndcg@10"
SHOWN = ("ndcg@10", "recall@10", "mrr@10")  # the columns of each segment view
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


def recompute_date() -> datetime.date:
    """Today (UTC), or the day of ``SOURCE_DATE_EPOCH`` when it is set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
    return datetime.datetime.now(datetime.UTC).date()


@dataclass
class Table:
    """The recomputed entries of one build, task and split, best NDCG@10 first (ties: the
    earlier submission date first)."""

    dataset: str
    fingerprint: str
    task: str
    split: str
    rows: list[Scored]
    rules: Rules
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> vs the reference
    reference: str | None = None  # the reference entry's slug

    @property
    def key(self) -> str:
        return f"{self.dataset}-{self.fingerprint[:12]}-{self.task}-{self.split}"

    @property
    def title(self) -> str:
        return f"{self.task}, {self.split} split — {DATASET_NAMES[self.dataset]}"


def metric_cell(
    row: Scored, metric: str, segment: str | None = None, group: str | None = None
) -> dict | None:
    """A recomputed metric (value and interval) of a row, overall or on one segment group."""
    mean = row.results["mean"]
    if segment is None:
        return mean["metrics"][metric]
    return mean["segments"].get(segment, {}).get(group, {}).get(metric)


def _order(row: Scored, segment: str | None = None, group: str | None = None) -> tuple:
    cell = metric_cell(row, HEADLINE, segment, group)
    meta = row.entry.metadata
    return (-(cell["value"] if cell else -1.0), meta.date, row.entry.slug)


def _table_of(row: Scored) -> tuple[str, str, str, str]:
    meta = row.entry.metadata
    return meta.dataset, meta.dataset_fingerprint, meta.task, meta.split


def group_tables(scored: list[Scored], rules: Rules) -> list[Table]:
    """Recomputed entries grouped by dataset, fingerprint, task and split; the real dataset
    first, tasks in their official order, test before validation."""
    keys = sorted(
        {_table_of(s) for s in scored},
        key=lambda k: (k[0] != "lastfm1k-mm", k[0], k[1], TASKS.index(k[2]), k[3] != "test"),
    )
    tables = []
    for dataset, fingerprint, task, split in keys:
        rows = [s for s in scored if _table_of(s) == (dataset, fingerprint, task, split)]
        rows.sort(key=_order)
        tables.append(Table(dataset, fingerprint, task, split, rows, rules))
    return tables


def reference_comparisons(table: Table, n_permutations: int = 10_000) -> None:
    """Fill ``table.comparisons``: each entry against the table's reference baseline (the
    task's in ``baselines.yaml``), paired over instances with runs averaged, on the metrics at
    10; the randomization p-values are Holm-corrected over those metrics of that one
    comparison, so that no entry's verdict depends on which other entries are in the table."""
    reference = next((r for r in table.rows if table.rules.is_reference(r.entry.slug, table.task)), None)
    if reference is None:
        return
    table.reference = reference.entry.slug
    for row in table.rows:
        if row is reference:
            continue
        result = compare_ranks(
            reference.ranks, row.ranks, ks=[10], n_bootstrap=1000, n_permutations=n_permutations
        )
        headline = next(r for r in result["metrics"] if r["metric"] == HEADLINE)
        table.comparisons[row.entry.slug] = {
            "against": reference.entry.slug,
            "difference": headline["difference"],
            "ci_low": headline["ci_low"],
            "ci_high": headline["ci_high"],
            "p_holm": headline["p_randomization_holm"],
            "holm_family": result["holm_family"],
            "significant": headline["significant"],
        }


def build_site(
    leaderboard: Path,
    out: Path,
    datasets: list[str] | tuple[str, ...],
    allow_download: bool = False,
    progress: bool = True,
) -> tuple[Path, Validation]:
    """Recompute every entry against ``datasets`` (builds), write ``out/index.html`` and refresh
    the tables in ``leaderboard/README.md``; return the page and what the checks found (the
    entries not shown, with why, are in its ``excluded``)."""
    found = check_leaderboard(
        leaderboard,
        datasets,
        recompute=True,
        allow_download=allow_download,
        skip_missing=True,
        progress=progress,
    )
    tables = group_tables(found.scored, found.rules)
    for table in tables:
        reference_comparisons(table)
    stamp = f"{recompute_date().isoformat()} by mmbench {version('mmbench')}"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    write_atomic(page, page_html(tables, found.excluded, stamp))
    readme = leaderboard / "README.md"
    if readme.is_file():
        write_atomic(
            readme, with_markdown_tables(readme.read_text(encoding="utf-8"), tables, found.excluded, stamp)
        )
    return page, found


# -- HTML --------------------------------------------------------------------------------------

e = html.escape


def _interval(cell: dict[str, float] | None) -> str:
    if not cell:
        return "—"
    return f"{cell['value']:.4f} <small>[{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]</small>"


def _comparison(table: Table, row: Scored) -> tuple[str, str]:
    """(cell HTML, sort value) of an entry's comparison with the table's reference."""
    if row.entry.slug == table.reference:
        return "reference", "0"
    c = table.comparisons.get(row.entry.slug)
    if c is None:
        return "—", "0"
    verdict = "significant" if c["significant"] else "not significant"
    text = f"{c['difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], p<sub>Holm</sub> = {c['p_holm']:.3g}"
    return f'<span class="{verdict.replace(" ", "-")}">{text} ({verdict})</span>', f"{c['difference']:.6f}"


def _kind(table: Table, row: Scored) -> str:
    slug = row.entry.slug
    return "probe" if table.rules.is_probe(slug) else "baseline" if table.rules.is_baseline(slug) else "point"


def _row(table: Table, row: Scored) -> str:
    meta, results = row.entry.metadata, row.results
    coverage = np.mean([run["coverage"]["coverage@10"] for run in results["runs"]])
    beyond = results["mean"]["beyond_accuracy"]
    diversity = [v for k, v in sorted(beyond.items()) if k.startswith("diversity@10/")]
    comparison, comparison_key = _comparison(table, row)
    kind = _kind(table, row)
    tag = f' <span class="tag">{kind}</span>' if kind != "point" else ""
    row_class = ' class="probe"' if kind == "probe" else ""
    code = (
        f"code: {e(meta.code.removeprefix('mmbench:'))} in mmbench"
        if meta.code.startswith("mmbench:")
        else f'<a href="{e(meta.code)}" rel="nofollow noopener">code</a>'
    )
    links = code + (
        f' · <a href="{e(str(meta.paper))}" rel="nofollow noopener">paper</a>' if meta.paper else ""
    )
    views = ""
    for view, segment, group, _ in SEGMENT_VIEWS:
        for metric in SHOWN:
            cell = metric_cell(row, metric, segment, group)
            text = _interval(cell) if metric == HEADLINE else (f"{cell['value']:.4f}" if cell else "—")
            views += (
                f'<td class="num view view-{view}" data-metric="{metric}" '
                f'data-value="{(cell or {"value": -1})["value"]:.6f}">{text}</td>'
            )
    return (
        f'<tr{row_class} data-slug="{e(row.entry.slug)}" data-modalities="{e(" ".join(meta.modalities))}" '
        f'data-backbone="{e(meta.backbone or "none")}" data-date="{meta.date.isoformat()}">'
        f'<td data-value="{e(meta.model.lower())}">{e(meta.model)}{tag}<br><small>{e(row.entry.slug)} · {links}</small></td>'
        f"{views}"
        f'<td class="num" data-value="{coverage:.6f}">{coverage:.4f}</td>'
        f'<td class="num" data-value="{beyond["novelty@10"]:.6f}">{beyond["novelty@10"]:.2f}</td>'
        f'<td class="num" data-value="{beyond["popularity_percentile@10"]:.6f}">{beyond["popularity_percentile@10"]:.3f}</td>'
        f'<td class="num" data-value="{diversity[0] if diversity else -1:.6f}">{" / ".join(f"{d:.3f}" for d in diversity) or "—"}</td>'
        f'<td data-value="{e(" ".join(meta.modalities))}">{e(", ".join(meta.modalities))}</td>'
        f'<td data-value="{e(meta.backbone or "")}">{e(meta.backbone or "—")}<br><small>{_parameters(meta.parameters)}</small></td>'
        f'<td class="num" data-value="{meta.runs}">{meta.runs}</td>'
        f'<td class="num" data-value="{comparison_key}">{comparison}</td>'
        f'<td data-value="{meta.date.isoformat()}">{meta.date.isoformat()}</td>'
        "</tr>"
    )


def _parameters(n: int | None) -> str:
    if n is None:
        return ""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit} parameters"
    return f"{n} parameters"


LABEL_W, PLOT_W, ROW_H, TOP_Y = 260, 420, 22, 34


def error_bars_svg(table: Table, view: str, segment: str | None, group: str | None) -> str:
    """NDCG@10 of every entry on one segment view with its 95% interval, best first, and the
    chance level as a dashed line. Each bar is a ``g`` translated to its row, so that the
    page's script can hide a filtered entry's bar and close the gap."""
    cells = {r.entry.slug: cell for r in table.rows if (cell := metric_cell(r, HEADLINE, segment, group))}
    rows = sorted((r for r in table.rows if r.entry.slug in cells), key=lambda r: _order(r, segment, group))
    chance = table.rows[0].results["chance"][HEADLINE]
    top = max([cells[r.entry.slug]["ci_high"] for r in rows] + [chance, 1e-9]) * 1.05
    height = TOP_Y + ROW_H * len(rows) + 8

    def x(v: float) -> float:
        return LABEL_W + PLOT_W * v / top

    parts = [
        f'<svg class="error-bars view-chart chart-{view}" role="img" aria-label="NDCG@10 with 95% intervals" '
        f'width="{LABEL_W + PLOT_W + 20}" height="{height}" viewBox="0 0 {LABEL_W + PLOT_W + 20} {height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in np.linspace(0, top, 5):
        parts.append(f'<text x="{x(tick):.1f}" y="12" text-anchor="middle" class="tick">{tick:.3f}</text>')
    parts.append(f'<text x="{LABEL_W - 24}" y="12" text-anchor="end" class="tick">NDCG@10</text>')
    parts.append(f'<text x="{x(chance) + 4:.1f}" y="26" class="tick">chance</text>')
    for i, row in enumerate(rows):
        cell = cells[row.entry.slug]
        parts.append(
            f'<g class="bar" data-slug="{e(row.entry.slug)}" transform="translate(0,{TOP_Y + 6 + i * ROW_H})">'
            f'<text x="{LABEL_W - 8}" y="4" text-anchor="end">{e(_short(row.entry.metadata.model))}</text>'
            f'<line x1="{x(cell["ci_low"]):.1f}" x2="{x(cell["ci_high"]):.1f}" y1="0" y2="0" class="ci"/>'
            f'<circle cx="{x(cell["value"]):.1f}" cy="0" r="4" class="{_kind(table, row)}"/>'
            f"<title>{e(row.entry.metadata.model)}: {cell['value']:.4f} [{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]</title></g>"
        )
    parts.append(
        f'<line x1="{x(chance):.1f}" x2="{x(chance):.1f}" y1="16" y2="{height - 4}" class="chance"/></svg>'
    )
    return "".join(parts)


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _table_html(table: Table, stamp: str) -> str:
    modalities = sorted({m for r in table.rows for m in r.entry.metadata.modalities})
    backbones = sorted({r.entry.metadata.backbone or "none" for r in table.rows})
    chance = table.rows[0].results["chance"]
    configs = sorted(
        k for k in table.rows[0].results["mean"]["beyond_accuracy"] if k.startswith("diversity@10/")
    )
    diversity_configs = " / ".join(c.removeprefix("diversity@10/") for c in configs) or "no content config"
    view_headers = "".join(
        f'<th class="num view view-{view}" data-type="num" title="{e(help)}">'
        + (
            "NDCG@10 [95% CI]"
            if metric == HEADLINE
            else metric.replace("recall", "Recall").replace("mrr", "MRR")
        )
        + "</th>"
        for view, _, _, help in SEGMENT_VIEWS
        for metric in SHOWN
    )
    headers = (
        '<th data-type="text">Model</th>'
        + view_headers
        + '<th class="num" data-type="num">Coverage@10</th>'
        + '<th class="num" data-type="num" title="mean self-information of the top 10, bits">Novelty@10</th>'
        + '<th class="num" data-type="num" title="mean training-popularity percentile of the top 10">Popularity@10</th>'
        + f'<th class="num" data-type="num" title="mean pairwise cosine distance of the top 10">Diversity@10<br><small>{e(diversity_configs)}</small></th>'
        + '<th data-type="text">Modalities</th><th data-type="text">Backbone</th>'
        + '<th class="num" data-type="num">Runs</th>'
        + f'<th class="num" data-type="num">vs {e(_reference_name(table))} (NDCG@10)</th>'
        + '<th data-type="text">Date</th>'
    )
    chance_views = "".join(
        f'<td class="num view view-{v}">{chance[m]:.4f}</td>' for v, *_ in SEGMENT_VIEWS for m in SHOWN
    )
    chance_row = (
        f'<tr class="chance-row"><td>chance (random ranking)</td>{chance_views}' + "<td></td>" * 9 + "</tr>"
    )
    options = lambda values: "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)  # noqa: E731
    view_options = "".join(f'<option value="{v}">{e(label)}</option>' for v, _, _, label in SEGMENT_VIEWS)
    charts = "".join(error_bars_svg(table, view, seg, grp) for view, seg, grp, _ in SEGMENT_VIEWS)
    return f"""
<section class="board" id="{e(table.key)}">
<h2>{e(table.title)}</h2>
<p class="meta">Recomputed from the predictions on {e(stamp)} against the build with fingerprint
<code>{e(table.fingerprint)}</code> · {len(table.rows)} entries · reference: {e(_reference_name(table))}</p>
<div class="controls">
<label>Modality <select class="filter-modality"><option value="">any</option>{options(modalities)}</select></label>
<label>Backbone <select class="filter-backbone"><option value="">any</option>{options(backbones)}</select></label>
<label>Segment <select class="segment-view">{view_options}</select></label>
</div>
{charts}
<div class="table-wrap"><table class="entries">
<thead><tr>{headers}</tr></thead>
<tbody>{"".join(_row(table, row) for row in table.rows)}</tbody>
<tfoot>{chance_row}</tfoot>
</table></div>
</section>"""


def _reference_name(table: Table) -> str:
    if table.reference is None:
        return f"no reference (none of {RULES}'s for {table.task} in this table)"
    return next(r.entry.metadata.model for r in table.rows if r.entry.slug == table.reference)


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1400px}
.table-wrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.82rem;margin-top:.5rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f4f4f4;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.num,th.num{text-align:right}.tag{background:#e8eefc;border-radius:3px;font-size:.75rem;padding:0 .3rem}
.chance-row td{color:#777;font-style:italic}.controls label{margin-right:1rem}
.view,.view-chart{display:none}
.board[data-view=overall] .view-overall,.board[data-view=cold] .view-cold,.board[data-view=coldnew] .view-coldnew,
.board[data-view=tail] .view-tail,.board[data-view=heard] .view-heard,.board[data-view=new] .view-new{display:table-cell}
.board[data-view=overall] .chart-overall,.board[data-view=cold] .chart-cold,.board[data-view=coldnew] .chart-coldnew,
.board[data-view=tail] .chart-tail,.board[data-view=heard] .chart-heard,.board[data-view=new] .chart-new{display:block}
tr.probe td{background:#fbf7ee}
svg .ci{stroke:#444;stroke-width:2}svg .point{fill:#1f77b4}svg .baseline{fill:#ff7f0e}svg .probe{fill:#999}
svg .chance{stroke:#c00;stroke-dasharray:4 3}svg text{font-size:11px}.significant{font-weight:600}
.banner{background:#fff4e0;border:1px solid #f0c36d;padding:.5rem 1rem}.excluded li{margin:.2rem 0}
"""

SCRIPT = f"""
var ROW_H = {ROW_H}, TOP_Y = {TOP_Y};
document.querySelectorAll('.board').forEach(function (board) {{
  board.dataset.view = 'overall';
  var body = board.querySelector('tbody');
  function rows() {{ return Array.prototype.slice.call(body.querySelectorAll('tr')); }}
  function sortBy(index, descending, numeric) {{
    var sorted = rows();
    sorted.sort(function (a, b) {{
      var x = a.children[index].dataset.value, y = b.children[index].dataset.value;
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      if (c === 0) {{ c = a.dataset.date.localeCompare(b.dataset.date) * (descending ? -1 : 1); }}
      return descending ? -c : c;
    }});
    sorted.forEach(function (row) {{ body.appendChild(row); }});
  }}
  function redrawCharts() {{
    var hidden = {{}};
    rows().forEach(function (row) {{ if (row.hidden) {{ hidden[row.dataset.slug] = true; }} }});
    board.querySelectorAll('svg.error-bars').forEach(function (svg) {{
      var shown = 0;
      svg.querySelectorAll('g.bar').forEach(function (bar) {{
        var off = hidden[bar.dataset.slug] === true;
        bar.style.display = off ? 'none' : '';
        if (!off) {{ bar.setAttribute('transform', 'translate(0,' + (TOP_Y + 6 + shown * ROW_H) + ')'); shown += 1; }}
      }});
      var height = TOP_Y + ROW_H * shown + 8;
      svg.setAttribute('height', height);
      svg.setAttribute('viewBox', '0 0 ' + svg.getAttribute('width') + ' ' + height);
      svg.querySelector('line.chance').setAttribute('y2', height - 4);
    }});
  }}
  function applyFilters() {{
    var modality = board.querySelector('.filter-modality').value;
    var backbone = board.querySelector('.filter-backbone').value;
    rows().forEach(function (row) {{
      var okM = !modality || row.dataset.modalities.split(' ').indexOf(modality) >= 0;
      var okB = !backbone || row.dataset.backbone === backbone;
      row.hidden = !(okM && okB);
    }});
    redrawCharts();
  }}
  board.querySelector('.filter-modality').addEventListener('change', applyFilters);
  board.querySelector('.filter-backbone').addEventListener('change', applyFilters);
  var headers = board.querySelectorAll('thead th');
  board.querySelector('.segment-view').addEventListener('change', function (event) {{
    var view = event.target.value;
    board.dataset.view = view;
    headers.forEach(function (o) {{ o.classList.remove('sorted-asc', 'sorted-desc'); }});
    var first = body.querySelector('tr');
    var index = Array.prototype.findIndex.call(first.children, function (td) {{
      return td.classList.contains('view-' + view) && td.dataset.metric === 'ndcg@10';
    }});
    headers[index].classList.add('sorted-desc');
    sortBy(index, true, true);
  }});
  headers.forEach(function (th, index) {{
    th.addEventListener('click', function () {{
      var descending = !th.classList.contains('sorted-desc');
      headers.forEach(function (o) {{ o.classList.remove('sorted-asc', 'sorted-desc'); }});
      th.classList.add(descending ? 'sorted-desc' : 'sorted-asc');
      sortBy(index, descending, th.dataset.type === 'num');
    }});
  }});
}});
"""


def _excluded_html(excluded: dict[str, str]) -> str:
    if not excluded:
        return ""
    items = "".join(f"<li><code>{e(slug)}</code>: {e(why)}</li>" for slug, why in sorted(excluded.items()))
    return (
        '<section class="excluded"><h2>Entries not shown</h2><p>Entries this build could not recompute '
        f"from their predictions, or refused, and why:</p><ul>{items}</ul></section>"
    )


def page_html(tables: list[Table], excluded: dict[str, str], stamp: str) -> str:
    """The whole leaderboard page."""
    sample = any(t.dataset == "sample" for t in tables)
    banner = (
        '<p class="banner">Tables marked <em>synthetic sample</em> score the baselines on the embedded synthetic '
        "sample: they show that the pipeline works, not how the models compare on real listening data.</p>"
        if sample
        else ""
    )
    body = "".join(_table_html(t, stamp) for t in tables) or "<p>No recomputed submissions.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LastFM-1K-MM leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>LastFM-1K-MM leaderboard</h1>
<p>Every number on this page was recomputed from the submitted predictions by the official evaluator
when the page was built (each table says against which build, and when); no number is read from a
submission. Intervals are 95% percentile bootstraps over instances (for several runs, of the mean over
runs). The comparison column is the paired randomization test of each entry against its table's
reference baseline (fixed per task in <code>leaderboard/{RULES}</code>) on NDCG@10, Recall@10 and
MRR@10, Holm-corrected over those three metrics of that entry alone: adding an entry changes no other
entry's verdict. Ties are ordered by submission date. Rows tagged <em>probe</em> are protocol probes:
rules with no model and no content that exploit what the protocol lets anyone know
(<code>history-lookup</code>: the user's heard tracks by recency; <code>unseen-first</code>: the
catalogue tracks nobody has played yet, certain to be played later). A model's gain, on any segment,
means something only above them; the segment view re-sorts the table and redraws the chart for the
segment.</p>
{banner}{body}{_excluded_html(excluded)}
<script>{SCRIPT}</script></body></html>
"""


# -- Markdown ------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#!|~])")


def markdown_text(text: str) -> str:
    """Submitted text as inert Markdown: one line, HTML escaped, and every character that
    could start a link, image, heading, emphasis or table cell backslash-escaped."""
    one_line = re.sub(r"[\r\n\t\x00-\x1f\x7f\u2028\u2029]+", " ", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def markdown_tables(tables: list[Table], excluded: dict[str, str], stamp: str) -> str:
    """The leaderboard as Markdown tables (one per build, task and split), then the entries
    not shown."""
    parts = []
    for table in tables:
        parts.append(f"\n### {markdown_text(table.title)}\n")
        parts.append(
            f"Recomputed from the predictions on {stamp} against the build with fingerprint "
            f"`{table.fingerprint}`; reference: {markdown_text(_reference_name(table))}.\n"
        )
        parts.append(
            "| Model | NDCG@10 [95% CI] | Recall@10 | MRR@10 | Modalities | Runs | vs reference (p<sub>Holm</sub>) |"
        )
        parts.append("|---|---:|---:|---:|---|---:|---|")
        for row in table.rows:
            metrics, meta = row.results["mean"]["metrics"], row.entry.metadata
            c = table.comparisons.get(row.entry.slug)
            versus = f"{c['difference']:+.4f} ({c['p_holm']:.3g})" if c else ""
            if row.entry.slug == table.reference:
                versus = "reference"
            probe = " *(probe)*" if table.rules.is_probe(row.entry.slug) else ""
            parts.append(
                f"| {markdown_text(meta.model)}{probe} | {metrics[HEADLINE]['value']:.4f} [{metrics[HEADLINE]['ci_low']:.4f}, "
                f"{metrics[HEADLINE]['ci_high']:.4f}] | {metrics['recall@10']['value']:.4f} | {metrics['mrr@10']['value']:.4f} "
                f"| {markdown_text(', '.join(meta.modalities))} | {meta.runs} | {versus} |"
            )
        chance = table.rows[0].results["chance"]
        parts.append(
            f"| *chance* | {chance[HEADLINE]:.4f} | {chance['recall@10']:.4f} | {chance['mrr@10']:.4f} | | | |"
        )
    if excluded:
        parts.append("\n### Entries not shown\n")
        # Slugs are lowercase letters, digits and dashes (checked), safe in a code span.
        parts += [f"- `{slug}`: {markdown_text(why)}" for slug, why in sorted(excluded.items())]
    return "\n".join(parts) + "\n"


def with_markdown_tables(readme: str, tables: list[Table], excluded: dict[str, str], stamp: str) -> str:
    """``readme`` with the text between the leaderboard markers replaced by the tables."""
    block = f"{README_START}\n{markdown_tables(tables, excluded, stamp)}{README_END}"
    if README_START in readme and README_END in readme:
        return re.sub(
            re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: block, readme, flags=re.S
        )
    return readme.rstrip("\n") + "\n\n" + block + "\n"
