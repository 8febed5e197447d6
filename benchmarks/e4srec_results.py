"""The e4srec table of docs/baselines.md: E4SRec variants on the sample, next to their ID encoder and pop.

Backbone: the packaged SmolLM2-135M (fp32 on this CPU), one epoch per run. The learning rate is
chosen on validation only: the ID-only row, seed 0, is trained with each rate of ``--rates`` and
the rate with the best validation NDCG@10 (recorded in the folder's config.json) is used for
every row. Rows:

- ``e4srec-id``: the paper's model, the ID encoder's item table and the linear head (``--seeds`` seeds);
- ``e4srec-content``: the ID part fused with audio-mfcc, lyrics-minilm and mgphot, tied head (``--seeds``);
- ``e4srec-content-completion``: as e4srec-content with each play's completion ratio embedded (1 seed);
- ``e4srec-id-tied``: as e4srec-id with the tied head, for linear against tied (1 seed).

E4SRec seed S reads the item table of sasrec seed S (default settings). Each run is trained,
ranks the test next-track instances and is scored with `mmbench evaluate --json`; the table
gives NDCG@10, Recall@10, MRR@10 (mean ± std over seeds and seed 0's 95% interval) and the
segments of cold targets (never played in training); then `mmbench compare` (paired,
Holm-corrected): each row against sasrec (the folders of the matching seeds' runs) and against
pop, and e4srec-content against e4srec-id.

Run: ``python benchmarks/e4srec_results.py --dataset demo-out --out e4srec-results [--seeds 3]``.
Everything is written under ``--out`` and reused, so an interrupted run (or one spread over
several sessions) resumes where it stopped; ``--only ROW`` limits a session to some rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from baseline_results import (  # the sibling script (benchmarks/ is on the path when run)
    METRICS,
    cell,
    compare_paths,
    sh,
)

CONTENT = '["audio-mfcc", "lyrics-minilm", "mgphot"]'
ROWS = {
    "e4srec-id": [],
    "e4srec-content": [f"content={CONTENT}", "head=tied"],
    "e4srec-content-completion": [f"content={CONTENT}", "head=tied", "completion=embed"],
    "e4srec-id-tied": ["head=tied"],
}
HEADLINE = ("e4srec-id", "e4srec-content")
COMMON = ["backbone=smollm2-135m", "epochs=1"]


def reference(model: str, seed: int | None, args: argparse.Namespace) -> tuple[Path, dict]:
    """Train (once) and score a reference model; its folder and report."""
    tag = model if seed is None else f"{model}-seed{seed}"
    folder, path = args.out / "models" / tag, args.out / "runs" / model / f"{tag}.jsonl"
    report = path.with_suffix(".report.json")
    if not report.exists():
        extra = [] if seed is None else ["--set", f"seed={seed}"]
        if not (folder / "config.json").exists():
            sh("baseline", "train", model, "--dataset", args.dataset, "--out", str(folder), "--quiet", *extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        sh("baseline", "predict", str(folder), "--out", str(path), "--quiet")
        sh("evaluate", str(path), "--dataset", args.dataset, "--json", str(report))
    return folder, json.loads(report.read_text())


def train(row: str, seed: int, rate: str, args: argparse.Namespace) -> Path:
    """Train (once) one E4SRec run; its folder."""
    folder = args.out / "models" / f"{row}-seed{seed}-lr{rate}"
    if not (folder / "config.json").exists():
        encoder, _ = reference("sasrec", seed, args)
        settings = [*COMMON, *ROWS[row], f"id_encoder={encoder}", f"seed={seed}", f"learning_rate={rate}"]
        sets = [x for s in settings for x in ("--set", s)]
        sh("baseline", "train", "e4srec", "--dataset", args.dataset, "--out", str(folder), "--quiet", *sets)
    return folder


def e4srec(row: str, seed: int, rate: str, args: argparse.Namespace) -> dict:
    """Train (once) and score one E4SRec run on the test split; its report."""
    folder = train(row, seed, rate, args)
    path = args.out / "runs" / row / f"{row}-seed{seed}.jsonl"
    report = path.with_suffix(".report.json")
    if not report.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        sh("baseline", "predict", str(folder), "--out", str(path), "--quiet")
        sh("evaluate", str(path), "--dataset", args.dataset, "--json", str(report))
    return json.loads(report.read_text())


def choose_rate(args: argparse.Namespace) -> str:
    """The learning rate of the best validation NDCG@10 of e4srec-id, seed 0: only validation is
    read (the runs of the other rates never rank the test split)."""
    scores = {}
    for rate in args.rates:
        record = json.loads((train("e4srec-id", 0, rate, args) / "config.json").read_text())
        scores[rate] = max(e["validation_ndcg@10"] for e in record["training"]["epochs"])
        print(f"learning rate {rate}: validation NDCG@10 {scores[rate]:.4f}")
    best = max(scores, key=scores.get)
    print(f"chosen on validation: learning_rate={best}")
    return best


def compare(a: Path, b: Path, name: str, seeds: int, args: argparse.Namespace) -> str:
    """A comparison's line; its report is named by the number of seeds it averages, so a run
    with more seeds never reuses one made with fewer."""
    return compare_paths(a, b, args.out / f"compare-{name}-{seeds}seeds.json", args.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", nargs="+", default=["0.0005", "0.0001"])
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rate = choose_rate(args)
    chosen = args.out / "learning_rate.txt"  # the test runs under --out were made with this rate
    if chosen.exists() and chosen.read_text().strip() != rate:
        raise SystemExit(
            f"{args.out} holds runs made with learning_rate={chosen.read_text().strip()}; use another --out"
        )
    chosen.write_text(rate + "\n")
    results: dict[str, list[dict]] = {"pop": [reference("pop", None, args)[1]]}
    results["sasrec"] = [reference("sasrec", s, args)[1] for s in range(args.seeds)]
    for row in args.only:
        seeds = range(args.seeds) if row in HEADLINE else range(1)
        results[row] = [e4srec(row, s, rate, args) for s in seeds]
    chance = results["pop"][0]["chance"]
    cold = ("target_cold", "true")
    n_cold = results["pop"][0]["segments"][cold[0]][cold[1]]["n"]
    print(f"\n| model | seeds | NDCG@10 | Recall@10 | MRR@10 | NDCG@10 cold (n={n_cold}) | Recall@100 cold |")
    print("|---|---|---|---|---|---|---|")
    print("| chance | | " + " | ".join(f"{chance[m]:.4f}" for m in METRICS) + " | | |")
    for model, reports in results.items():
        cells = [cell(reports, m) for m in METRICS]
        cells += [cell(reports, "ndcg@10", cold), cell(reports, "recall@100", cold)]
        print(f"| `{model}` | {len(reports)} | " + " | ".join(cells) + " |")
    print()
    runs = args.out / "runs"
    for row in args.only:
        seeds = args.seeds if row in HEADLINE else 1
        sasrec = runs / "sasrec" if seeds == args.seeds else runs / "sasrec" / "sasrec-seed0.jsonl"
        mine = runs / row if seeds == args.seeds else runs / row / f"{row}-seed0.jsonl"
        print(f"{row} - sasrec ({seeds} seed(s)): {compare(sasrec, mine, f'sasrec-{row}', seeds, args)}")
        print(
            f"{row} - pop ({seeds} seed(s)): {compare(runs / 'pop' / 'pop.jsonl', mine, f'pop-{row}', seeds, args)}"
        )
    if set(HEADLINE) <= set(args.only):
        a, b = runs / HEADLINE[0], runs / HEADLINE[1]
        print(
            f"e4srec-content - e4srec-id ({args.seeds} seeds): {compare(a, b, 'id-content', args.seeds, args)}"
        )


if __name__ == "__main__":
    main()
