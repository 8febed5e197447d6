"""The E4SRec table of docs/baselines.md: E4SRec and its controls on the sample, with per-seed values.

Backbone: the packaged SmolLM2-135M (fp32 on this CPU), the training recipe of
``baselines/configs/e4srec.toml`` (linear warmup, cosine decay, gradient clipping, early
stopping on validation within its ``epochs`` bound). Two choices are made on validation only,
with seed 0, and every other run uses them:

- the learning rate: ``e4srec-id`` trained with each rate of ``--rates``;
- the fusion of the content rows: ``e4srec-content`` trained with each fusion of ``--fusions``.

Rows (``--seeds`` seeds for the references and the headline rows, one seed for the other axes):

- references: ``pop``; ``sasrec`` and ``sasrec-mm`` (the non-LLM models, default settings);
  ``bert4rec`` and ``gru4rec`` (seed 0, the ID encoders of the backbone axis);
- headline: ``e4srec-id`` (the paper's model: SASRec seed S's frozen item table, linear head),
  ``e4srec-content`` (the ID part fused with audio-mfcc, lyrics-minilm and mgphot, tied head),
  ``e4srec-random`` (as e4srec-id, the backbone's shape with random frozen weights: does
  pretraining matter?), ``e4srec-text`` (as e4srec-id, the last ``--text-items`` items preceded
  by "artist - title": can the LLM's knowledge of music count?);
- one seed: ``e4srec-frozen`` (no LoRA: does adapting the LLM matter?), ``e4srec-bert4rec`` and
  ``e4srec-gru4rec`` (the ID encoder), ``e4srec-audio``, ``e4srec-lyrics``, ``e4srec-mgphot``
  (one content config each, tied head: is fusion additive?), ``e4srec-embed`` and
  ``e4srec-prompt`` (the completion ratio embedded, or as text after the last ``--text-items``
  items), ``e4srec-last`` (targets = each user's last 50 training plays, as the originals);
- a diagnostic, on validation only: ``e4srec-id``'s seed with the lowest validation score trained
  again with an epochs bound of ``--longer``. The block shows every headline run's training curve
  beside the loss of predicting popularity alone, to tell a seed that is cut off by the bound
  from one that diverges.

Each run is trained, ranks the test next-track instances and is scored by `mmbench evaluate
--json`; comparisons are `mmbench compare` (paired bootstrap interval, randomization test,
Holm-corrected over the metrics), over the seeds' mean and seed by seed.

Run: ``python benchmarks/e4srec_results.py --dataset SAMPLE --out DIR [--only ROW ...] [--docs]``.
Everything is written under ``--out`` and reused, so a run resumes where it stopped and the
rows can be spread over sessions (``--only``); ``--docs`` writes the rows whose runs are all
done into docs/baselines.md and names the rest as not yet run; ``runs.json`` lists the finished
rows' folders and files (the test predictions and the paper-sampled ones, made from the same
model) for leaderboard/sample_entries.py. The defaults reproduce the docs.

``--records DIR`` keeps every finished E4SRec run's records in DIR: its training record and cost,
its test report and both tasks' predictions (gzipped), never the weights. A run whose records are
there is taken back from them instead of trained, so the table survives the loss of ``--out``
and a reviewer regenerates it (``--report-only``) without training. The docs' runs are kept in
``benchmarks/e4srec-records/``. Of the references (sasrec, sasrec-mm), the reports and test
predictions are kept and not the weights: a missing model folder is trained again (byte-identical,
in minutes), since E4SRec's ID encoders start from it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
from pathlib import Path

from baseline_results import (  # the sibling script (benchmarks/ is on the path when run)
    DOCS,
    compare_row,
    predictions,
    run,
    write_block,
)

from mmbench.reproduce import measured_run, mmbench_command

CONTENT = ("audio-mfcc", "lyrics-minilm", "mgphot")
SINGLE_CONTENT = {"e4srec-audio": "audio-mfcc", "e4srec-lyrics": "lyrics-minilm", "e4srec-mgphot": "mgphot"}
HEADLINE = ("e4srec-id", "e4srec-content", "e4srec-random", "e4srec-text")
AXES = (
    "e4srec-frozen",
    "e4srec-bert4rec",
    "e4srec-gru4rec",
    "e4srec-audio",
    "e4srec-lyrics",
    "e4srec-mgphot",
    "e4srec-embed",
    "e4srec-prompt",
    "e4srec-last",
)
ROWS = (*HEADLINE, *AXES)
REFERENCES = ("sasrec", "sasrec-mm")
WHAT = {
    "pop": "popularity",
    "history-lookup": "probe: the user's heard tracks, most recent first, no model",
    "sasrec": "the ID encoder, no LLM",
    "sasrec-mm": "SASRec over the same content, no LLM",
    "e4srec-id": "ID only (the paper's model)",
    "e4srec-content": "ID + audio, lyrics, mgphot, tied head",
    "e4srec-random": "as e4srec-id, random backbone weights",
    "e4srec-text": "as e4srec-id, item text",
    "e4srec-frozen": "as e4srec-id, no LoRA",
    "e4srec-bert4rec": "as e4srec-id, BERT4Rec's item table",
    "e4srec-gru4rec": "as e4srec-id, GRU4Rec's item table",
    "e4srec-audio": "ID + audio-mfcc, tied head",
    "e4srec-lyrics": "ID + lyrics-minilm, tied head",
    "e4srec-mgphot": "ID + mgphot, tied head",
    "e4srec-embed": "as e4srec-id, completion embedded",
    "e4srec-prompt": "as e4srec-id, completion as text",
    "e4srec-last": "as e4srec-id, targets = last 50",
}
# (B, A): B's difference from A, with what the comparison asks.
COMPARISONS = (
    ("e4srec-id", "sasrec", "does the LLM beat its ID encoder?"),
    ("e4srec-id", "e4srec-random", "does pretraining matter?"),
    ("e4srec-content", "e4srec-id", "does content lift E4SRec (the paper's claim)?"),
    ("e4srec-content", "sasrec-mm", "the same content without the LLM"),
    ("e4srec-text", "e4srec-id", "does item text help?"),
    ("sasrec-mm", "sasrec", "does content lift SASRec?"),
)


def row_settings(row: str, seed: int, rate: str, fusion: str, args: argparse.Namespace) -> list[str]:
    """The ``--set`` values of one E4SRec run (the ID encoder folders are trained first)."""
    encoder = {"e4srec-bert4rec": "bert4rec", "e4srec-gru4rec": "gru4rec"}.get(row, "sasrec")
    run(encoder, seed, args.dataset, args.out)
    settings = [f"id_encoder={args.out / f'{encoder}-seed{seed}'}", f"seed={seed}", f"learning_rate={rate}"]
    if row == "e4srec-content" or row in SINGLE_CONTENT:
        content = CONTENT if row == "e4srec-content" else (SINGLE_CONTENT[row],)
        settings += ["content=" + json.dumps(list(content)), "head=tied", f"fusion={fusion}"]
    text = [f"text_items={args.text_items}"]
    settings += {
        "e4srec-random": ["weights=random"],
        "e4srec-text": ["item_text=true", *text],
        "e4srec-frozen": ["lora=false"],
        "e4srec-embed": ["completion=embed"],
        "e4srec-prompt": ["completion=prompt", *text],
        "e4srec-last": ["targets=last"],
    }.get(row, [])
    return settings


def train(
    row: str, seed: int, rate: str, fusion: str, args: argparse.Namespace, epochs: int | None = None
) -> Path:
    """Train (once) one E4SRec run (``epochs``: another bound than the config's); its folder, with
    ``cost.json`` (wall time, peak memory)."""
    folder = model_folder(row, seed, rate, fusion, args, epochs)
    name = folder.name
    if not (folder / "config.json").exists():
        settings = row_settings(row, seed, rate, fusion, args) + ([f"epochs={epochs}"] if epochs else [])
        sets = [x for s in settings for x in ("--set", s)]
        command = mmbench_command(
            "baseline", "train", "e4srec", "--dataset", args.dataset, "--out", str(folder), "--quiet", *sets
        )
        code, seconds, peak_gib = measured_run(command, stdout=True)  # this child's own peak memory
        if code:
            raise SystemExit(f"training {name} failed (exit {code})")
        cost = {"train_seconds": round(seconds, 1), "peak_gib": round(peak_gib, 2)}
        (folder / "cost.json").write_text(json.dumps(cost) + "\n")
        if args.records:
            keep_records(args.out, args.records)
    return folder


def model_folder(
    row: str, seed: int, rate: str, fusion: str, args: argparse.Namespace, epochs: int | None = None
) -> Path:
    name = f"{row}-seed{seed}-lr{rate}" + (f"-{fusion}" if uses_fusion(row) else "")
    return args.out / "models" / (name + (f"-epochs{epochs}" if epochs else ""))


def longer_run(
    results: dict[str, list[dict]], choices: dict, wanted: set[str], args: argparse.Namespace
) -> tuple[int, Path] | None:
    """``e4srec-id``'s seed with the lowest best validation NDCG@10, trained again with an epochs
    bound of ``--longer`` (does the bound cut off a seed that falls behind?). Its curve joins the
    training curves; it is never scored on test."""
    runs = results.get("e4srec-id", [])
    if not args.longer or choices["rate"] is None or len(runs) < args.seeds:
        return None
    seed = min(range(len(runs)), key=lambda s: best_validation(choices["folders"][("e4srec-id", s)]))
    folder = model_folder("e4srec-id", seed, choices["rate"], "", args, args.longer)
    if not (folder / "config.json").exists():
        if "e4srec-id" not in wanted:
            return None
        train("e4srec-id", seed, choices["rate"], "", args, args.longer)
    return seed, folder


def uses_fusion(row: str) -> bool:
    return row in ("e4srec-content", "e4srec-audio", "e4srec-lyrics", "e4srec-mgphot")


def best_validation(folder: Path) -> float:
    record = json.loads((folder / "config.json").read_text())
    return max(e["validation_ndcg@10"] for e in record["training"]["epochs"])


def choose(
    row: str, options: list[str], rate: str | None, args: argparse.Namespace
) -> tuple[str | None, dict[str, float]]:
    """The option with the best validation NDCG@10 of ``row``, seed 0 (learning rates when
    ``rate`` is None, else fusions); only validation is read. With ``--report-only``, nothing is
    trained and the choice is None until every option's run is done."""
    scores = {}
    for option in options:
        folder = model_folder(
            row, 0, option if rate is None else rate, "sum" if rate is None else option, args
        )
        if not (folder / "config.json").exists() and args.report_only:
            continue
        folder = train(row, 0, option, "sum", args) if rate is None else train(row, 0, rate, option, args)
        scores[option] = best_validation(folder)
    if len(scores) < len(options):
        return None, scores
    return max(scores, key=lambda o: scores[o]), scores


def test_report(row: str, seed: int, rate: str, fusion: str, args: argparse.Namespace) -> dict:
    """Train (once), predict both tasks and score one E4SRec run on the test split; its report."""
    folder = train(row, seed, rate, fusion, args)
    path = predictions(row, seed, args.out)
    sampled = paper_sampled(row, seed, args.out)
    report = args.out / f"{row}-seed{seed}.report.json"
    for task, out in (("next-track", path), ("paper-sampled", sampled)):
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["mmbench", "baseline", "predict", str(folder), "--task", task, "--out", str(out), "--quiet"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    if not report.exists():
        subprocess.run(["mmbench", "evaluate", str(path), "--dataset", args.dataset, "--json", str(report)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    if args.records:
        keep_records(args.out, args.records)
    return json.loads(report.read_text())


def paper_sampled(row: str, seed: int, out: Path) -> Path:
    """The paper-sampled test predictions of an E4SRec run (for its leaderboard entry)."""
    return out / "runs-paper-sampled" / row / f"seed{seed}.jsonl"


def record_files(out: Path) -> list[Path]:
    """The records of the finished runs under ``out``, relative to it: each E4SRec model's
    training record and cost, the reports and test predictions of each row's seeds (and for
    E4SRec the paper-sampled ones) and of the references (sasrec, sasrec-mm)."""
    files = sorted((out / "models").glob("*/cost.json"))
    files += [p.with_name("config.json") for p in files]
    for row in (*REFERENCES, *ROWS):
        for report in sorted(out.glob(f"{row}-seed*.report.json")):
            seed = int(report.name.removeprefix(f"{row}-seed").split(".")[0])
            files += [report, predictions(row, seed, out)]
            files += [paper_sampled(row, seed, out)] if row in ROWS else []
    return [p.relative_to(out) for p in files if p.exists()]


def copy_record(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a ``.partial`` file, gzipping where only the target
    ends in ``.gz`` (byte-stable: no name or time in the header) and unzipping where only the
    source does."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with (
        gzip.open(source, "rb") if source.suffix == ".gz" else source.open("rb") as reader,
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        if target.suffix == ".gz"
        else raw as writer,
    ):
        shutil.copyfileobj(reader, writer)
    partial.replace(target)


def keep_records(out: Path, records: Path) -> None:
    """Copy the records of ``out``'s finished runs that ``records`` lacks (predictions gzipped)."""
    for name in record_files(out):
        kept = records / (f"{name}.gz" if name.suffix == ".jsonl" else name)
        if not kept.exists():
            copy_record(out / name, kept)


def restore_records(records: Path, out: Path) -> None:
    """Take back into ``out`` the kept records it lacks (a model folder then holds its training
    record and cost but no weights: the run counts as trained, its reports and predictions are
    reused)."""
    for kept in sorted(p for p in records.rglob("*") if p.is_file()):
        name = kept.relative_to(records)
        target = out / (name.with_suffix("") if name.suffix == ".gz" else name)
        if name.parts[0] not in ("dataset_fingerprint.txt", "options.json") and not target.exists():
            copy_record(kept, target)


def done_report(row: str, seed: int, args: argparse.Namespace) -> dict | None:
    path = args.out / f"{row}-seed{seed}.report.json"
    return json.loads(path.read_text()) if path.exists() else None


def finished_runs(row: str, args: argparse.Namespace) -> list[dict]:
    """The reports of seeds 0, 1, ... up to the first not yet run (a table row's seeds are the
    first ones, so that position i is seed i)."""
    reports = []
    for seed in seeds_of(row, args):
        report = done_report(row, seed, args)
        if report is None:
            break
        reports.append(report)
    return reports


def seeds_of(row: str, args: argparse.Namespace) -> range:
    return range(args.seeds) if row in HEADLINE or row in REFERENCES else range(1)


def ndcg(report: dict, segment: tuple[str, str] | None = None) -> float:
    part = report["metrics"] if segment is None else report["segments"][segment[0]][segment[1]]
    return part.get("ndcg@10", {}).get("value", 0.0)


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def comparison(b: str, a: str, seed: int | None, args: argparse.Namespace) -> dict:
    """`mmbench compare` of A and B: over the seeds' mean (``seed`` None: the folders of the
    runs), or of one seed's runs."""
    path_a = args.out / "runs" / a if seed is None else predictions(a, seed, args.out)
    path_b = args.out / "runs" / b if seed is None else predictions(b, seed, args.out)
    name = f"compare-{a}-{b}-" + (f"{args.seeds}seeds" if seed is None else f"seed{seed}")
    return compare_row(path_a, path_b, args.out / f"{name}.json", args.dataset)


def holds(per_seed: list[dict], overall: dict) -> str:
    """Whether a comparison holds seed by seed: every seed's difference on the mean's side, and
    how many are significant."""
    sign = 1 if overall["difference"] >= 0 else -1
    same = sum(1 for r in per_seed if r["difference"] * sign > 0)
    significant = sum(1 for r in per_seed if r["significant"] and r["difference"] * sign > 0)
    verdict = "yes" if same == len(per_seed) and significant == len(per_seed) else "no"
    return f"{verdict}: {same} of {len(per_seed)} seeds on the mean's side, {significant} significant"


def popularity_loss(dataset: str) -> float:
    """The training loss (nats) of a model that predicts the training plays' popularity alone:
    the entropy of the tracks of the training plays, the level a run's loss stays at until it
    uses the history."""
    import numpy as np

    from mmbench.baselines.data import Benchmark

    counts = Benchmark(dataset).tracks["n_plays_train"].to_numpy().astype(float)
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum())


def training_curves(results: dict[str, list[dict]], choices: dict, args: argparse.Namespace) -> list[str]:
    """The markdown lines of the headline runs' training records (each run's config.json): the
    loss by tenth of each epoch, the largest gradient norm before clipping, validation NDCG@10."""
    lines = [
        "",
        "Training curves of the headline runs (each run's `config.json`): the mean loss over each tenth "
        "of an epoch, the largest gradient norm before clipping, and validation NDCG@10 after the epoch. "
        f"A model that predicts the training plays' popularity alone has a loss of {popularity_loss(args.dataset):.2f} "
        "nats (the entropy of their tracks): a run whose loss stays there has not yet used the history.",
        "",
        "| run | epoch | loss by tenth | max gradient norm | validation NDCG@10 |",
        "|---|---:|---|---:|---:|",
    ]
    runs = [(f"`{row}` seed {seed}", choices["folders"][(row, seed)]) for row in HEADLINE for seed in range(len(results.get(row, [])))]  # fmt: skip
    if choices.get("longer"):
        seed, folder = choices["longer"]
        runs.append((f"`e4srec-id` seed {seed}, bound {args.longer} epochs", folder))
    for name, folder in runs:
        for epoch in json.loads((folder / "config.json").read_text())["training"]["epochs"]:
            tenths = " ".join(f"{x:.2f}" for x in epoch["loss_by_tenth"])
            lines.append(
                f"| {name} | {epoch['epoch']} | {tenths} | {epoch['max_grad_norm']:.2f} | "
                f"{epoch['validation_ndcg@10']:.4f} |"
            )
    if choices.get("longer"):
        lines += [
            "",
            f"The last run is `e4srec-id`'s seed with the lowest validation score trained again with an epochs "
            f"bound of {args.longer} (`--longer`; its cosine decays over the longer bound), scored on validation only.",
        ]
    return lines


def section(results: dict[str, list[dict]], choices: dict, args: argparse.Namespace) -> str:
    """The markdown of the E4SRec results block."""
    from mmbench.fingerprint import dataset_fingerprint
    from mmbench.schema import DATASET_VERSION

    first = results["pop"][0]
    cold = ("target_cold", "true")
    n_cold = first["segments"][cold[0]][cold[1]]["n"]
    rates = ", ".join(f"{r}: {v:.4f}" for r, v in choices["rate_scores"].items())
    fusions = ", ".join(f"{f}: {v:.4f}" for f, v in choices["fusion_scores"].items())
    rate_text = (
        f"learning rate {choices['rate']} ({rates})"
        if choices["rate"]
        else f"learning rate not chosen yet (finished: {rates or 'none'} of {', '.join(args.rates)})"
    )
    fusion_text = (
        f"fusion {choices['fusion']} ({fusions})"
        if choices["fusion"]
        else f"fusion not chosen yet (finished: {fusions or 'none'} of {', '.join(args.fusions)})"
    )
    records = ""
    if args.records:
        kept = args.records.resolve()
        records = f" --records {kept.relative_to(DOCS.parents[1]) if kept.is_relative_to(DOCS.parents[1]) else kept}"
    lines = [
        f"Measured by `python benchmarks/e4srec_results.py --dataset DIR --out DIR --seeds {args.seeds} "
        f"--text-items {args.text_items} --longer {args.longer}{records} --docs` on the sample, dataset version {DATASET_VERSION} "
        f"(fingerprint `{dataset_fingerprint(args.dataset)[:16]}…`), next-track test split, "
        f"{first['n_instances']} instances, SmolLM2-135M in fp32 on a 2-core CPU. This block is written "
        "by the script; do not edit it by hand.",
        "",
        f"Chosen on validation (NDCG@10 of seed 0's best epoch): {rate_text}; {fusion_text}.",
        "",
        f"| model | what | seeds | NDCG@10 | per seed | Recall@10 | NDCG@10 cold (n={n_cold}) | best epoch | training wall (min) |",  # noqa: E501
        "|---|---|---:|---|---|---|---|---|---|",
        f"| chance | | | {first['chance']['ndcg@10']:.4f} | | {first['chance']['recall@10']:.4f} | | | |",
    ]
    pending = []
    for model, reports in results.items():
        expected = 1 if model in ("pop", "history-lookup") else len(seeds_of(model, args))
        if len(reports) < expected:
            pending.append(f"`{model}` ({expected - len(reports)} of {expected} runs)")
        if not reports:
            continue
        values = [ndcg(r) for r in reports]
        recall = mean_std([r["metrics"]["recall@10"]["value"] for r in reports])
        cold_cell = mean_std([ndcg(r, cold) for r in reports])
        epochs, minutes = "", ""
        if model.startswith("e4srec"):
            folders = [choices["folders"][(model, s)] for s in range(len(reports))]
            records = [json.loads((f / "config.json").read_text())["training"] for f in folders]
            epochs = ", ".join(f"{r['best_epoch']}/{len(r['epochs'])}" for r in records)
            costs = [json.loads((f / "cost.json").read_text())["train_seconds"] / 60 for f in folders]
            minutes = ", ".join(f"{c:.0f}" for c in costs)
        per_seed = ", ".join(f"{v:.4f}" for v in values) if len(values) > 1 else ""
        lines.append(
            f"| `{model}` | {WHAT.get(model, '')} | {len(reports)} | {mean_std(values)} | {per_seed} | "
            f"{recall} | {cold_cell} | {epochs} | {minutes} |"
        )
    if args.longer and not choices.get("longer"):
        pending.append(f"the `--longer {args.longer}` run of `e4srec-id`'s slowest seed (validation only)")
    if pending:
        lines += ["", "Not run yet: " + ", ".join(pending) + "."]
    lines += training_curves(results, choices, args)
    lines += [
        "",
        "Paired comparisons (`mmbench compare A B --k 10`; over the mean: the folders of the seeds' runs, an "
        "instance's metric is its mean over the seeds; per seed: seed S against seed S; NDCG@10 difference "
        "B − A [95% paired bootstrap interval], randomization p Holm-corrected over the metrics, * significant):",
        "",
        "| B − A | asks | over the mean | p | per seed | holds seed by seed |",
        "|---|---|---|---:|---|---|",
    ]
    for b, a, asks in COMPARISONS:
        if not results.get(a) or not results.get(b):
            continue
        seeds = min(len(results[a]), len(results[b]))
        if seeds < args.seeds:
            continue
        overall = comparison(b, a, None, args)
        per_seed = [comparison(b, a, s, args) for s in range(seeds)]
        cells = ", ".join(f"{r['difference']:+.4f}{'*' if r['significant'] else ''}" for r in per_seed)
        lines.append(
            f"| `{b}` − `{a}` | {asks} | {overall['difference']:+.4f} [{overall['ci_low']:+.4f}, "
            f"{overall['ci_high']:+.4f}] | {overall['p_randomization_holm']:.2g} | {cells} | {holds(per_seed, overall)} |"
        )
    # one content config against all three asks the seed paper's "fusion is not additive"
    pairs = [
        (row, base)
        for row in AXES
        for base in ("e4srec-id", *(["e4srec-content"] if row in SINGLE_CONTENT else []))
        if results.get(row) and results.get(base)
    ]
    if pairs:
        lines += [
            "",
            "One-seed rows against seed 0 of the row they change (`e4srec-id`; for one content config, also all three):",
            "",
            "| B − A | NDCG@10 difference | p |",
            "|---|---|---:|",
        ]
    for row, base in pairs:
        r = comparison(row, base, 0, args)
        star = " *" if r["significant"] else ""
        lines.append(
            f"| `{row}` − `{base}` | {r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
            f"{r['p_randomization_holm']:.2g}{star} |"
        )
    return "\n".join(lines) + "\n"


def stamp_runs(folder: Path, fingerprint: str, options: dict) -> None:
    """Mark ``folder`` as holding runs of this build with these options; refuse one that holds
    runs of another."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp, kept = folder / "dataset_fingerprint.txt", folder / "options.json"
    if stamp.exists() and stamp.read_text().strip() != fingerprint:
        raise SystemExit(
            f"{folder} holds runs of another build ({stamp.read_text().strip()}); use another folder"
        )
    if kept.exists() and json.loads(kept.read_text()) != options:
        raise SystemExit(f"{folder} holds runs made with {kept.read_text().strip()}; use another folder")
    stamp.write_text(fingerprint + "\n")
    kept.write_text(json.dumps(options) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", nargs="+", default=["0.002", "0.001", "0.0005"])
    parser.add_argument("--fusions", nargs="+", default=["sum", "gated", "concat"])
    parser.add_argument("--text-items", type=int, default=5)
    parser.add_argument(
        "--longer",
        type=int,
        default=4,
        help="Train e4srec-id's seed with the lowest validation score again with this epochs bound (0: no).",
    )
    parser.add_argument("--only", nargs="+", choices=[*REFERENCES, *ROWS], help="Train these rows only.")
    parser.add_argument("--docs", action="store_true", help="Write the block into docs/baselines.md.")
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        help="Keep the finished runs' records here and take back the missing ones (benchmarks/e4srec-records).",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="Train nothing: the table of the finished runs."
    )
    args = parser.parse_args()
    args.dataset = str(Path(args.dataset).resolve())
    from mmbench.fingerprint import dataset_fingerprint

    fingerprint = dataset_fingerprint(args.dataset)
    # Reports and predictions are named by row and seed only: every run of --out must be of this
    # build and share the lists the choices are made from and the rows' text settings.
    wanted_options = {"rates": args.rates, "fusions": args.fusions, "text_items": args.text_items}
    for folder in (args.out, args.records) if args.records else (args.out,):
        stamp_runs(folder, fingerprint, wanted_options)
    if args.records:
        restore_records(args.records, args.out)
    wanted = set() if args.report_only else set(args.only or [*REFERENCES, *ROWS])
    rate, rate_scores = choose("e4srec-id", args.rates, None, args)
    print(f"learning rate chosen on validation: {rate} {rate_scores}", flush=True)
    fusion, fusion_scores = None, {}
    content_rows = {"e4srec-content", *SINGLE_CONTENT}
    if rate is not None and (
        wanted & content_rows or any((args.out / "models").glob("e4srec-content-seed0-*"))
    ):
        fusion, fusion_scores = choose("e4srec-content", args.fusions, rate, args)
        print(f"fusion chosen on validation: {fusion} {fusion_scores}", flush=True)
    choices = {"rate": rate, "rate_scores": rate_scores, "fusion": fusion, "fusion_scores": fusion_scores}
    choices["folders"] = {}
    # pop and the protocol probe that exploits the history (the simplest rule to beat on this split)
    results: dict[str, list[dict]] = {
        m: [run(m, None, args.dataset, args.out)] for m in ("pop", "history-lookup")
    }
    for model in REFERENCES:
        if model in wanted:
            results[model] = [run(model, s, args.dataset, args.out) for s in seeds_of(model, args)]
        else:
            results[model] = finished_runs(model, args)
    for row in ROWS:
        seeds = seeds_of(row, args)
        ready = rate is not None and (fusion is not None or not uses_fusion(row))
        if row in wanted and ready:
            results[row] = [test_report(row, s, rate, fusion, args) for s in seeds]
        else:
            results[row] = finished_runs(row, args)
        for s in range(len(results[row])):
            choices["folders"][(row, s)] = model_folder(row, s, rate or "", fusion or "", args)
        print(f"{row}: {[round(ndcg(r), 4) for r in results[row]]}", flush=True)
    choices["longer"] = longer_run(results, choices, wanted, args)
    finished = {
        row: {
            str(s): {
                "model": str(choices["folders"][(row, s)]),
                "predictions": str(predictions(row, s, args.out)),
                "paper_sampled": str(paper_sampled(row, s, args.out)),
            }
            for s in seeds_of(row, args)
        }
        for row in ROWS
        if len(results[row]) == len(seeds_of(row, args))
    }
    record = {"learning_rate": rate, "fusion": fusion, "runs": finished}
    (args.out / "runs.json").write_text(
        json.dumps(record, indent=2) + "\n"
    )  # read by leaderboard/sample_entries.py
    text = section(results, choices, args)
    print(text)
    if args.docs:
        write_block(DOCS, "e4srec-results", text)
        print(f"written to {DOCS}")


if __name__ == "__main__":
    main()
