"""Regenerate the leaderboard's entries for mmbench's baselines on the synthetic sample.

    python leaderboard/sample_entries.py --dataset demo-out --runs results [--seeds 3] \
        [--e4srec e4srec-results] [--zeroshot]

Run it whenever the evaluator or the sample's dataset fingerprint changes. It trains every
classic baseline and protocol probe through `benchmarks/baseline_results.py` (resumable:
finished runs are reused; the neural ones once per seed); with ``--e4srec``, it takes the
E4SRec runs of `benchmarks/e4srec_results.py`'s folder (every finished row, each seed, as its
``runs.json`` lists them);
with ``--zeroshot``, it runs the zero-shot likelihood ranker over SASRec seed 0's top 20. It
writes the paper-sampled predictions of the same trained models, removes the old sample entries,
adds each model's run folder with `mmbench submit` and writes their lines of
`leaderboard/baselines.yaml` (the entries that are mmbench's baselines, and the reference of
each task), keeping the lines of other entries. An entry's name, modalities and backbone are
read from the trained model's own settings, never typed here. The entries are marked
``dataset: sample``: the site and README say they are synthetic.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mmbench.baselines import PROBES
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.baseline_entries import described, metadata
from mmbench.leaderboard.rules import RULES, read_rules
from mmbench.leaderboard.submissions import SUBMISSIONS, read_entries

HERE = Path(__file__).resolve().parent
MEMORY = ("pop", "user-repeat", "sknn", *PROBES)
NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
REFERENCE = {"next-track": "sasrec", "paper-sampled": "sasrec"}


def mmbench(*args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("mmbench")), *args], check=True, stdout=subprocess.DEVNULL
    )


def run_folder(
    row: str, trained: dict[int, Path], made: dict[str, dict[int, Path]], runs: Path, dataset: str, task: str
) -> Path:
    """The folder of a model's predictions for ``task``, ``seed<N>.jsonl`` per run: the results
    scripts' files where ``made`` has the task's (next-track's always, paper-sampled's for the
    E4SRec runs), else predicted here from the same models."""
    folder = runs / f"leaderboard-{task}" / row
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"seed{seed}.jsonl" for seed in trained}
    for stale in folder.iterdir():  # a run of another seed count would be submitted with these
        if stale.name not in wanted:
            stale.unlink()
    for seed, model_dir in trained.items():
        out = folder / f"seed{seed}.jsonl"
        if task in made:
            shutil.copyfile(made[task][seed], out)
        elif not out.exists():
            mmbench("baseline", "predict", str(model_dir), "--task", task, "--dataset", dataset, "--out", str(out), "--quiet")  # fmt: skip
    return folder


Made = dict[str, dict[int, Path]]  # task -> seed -> a results script's test predictions


def models(args: argparse.Namespace) -> dict[str, tuple[str, dict[int, Path], Made]]:
    """Each entry row: (its mmbench baseline, seed -> trained folder, the test predictions the
    results scripts made)."""
    runs = args.runs
    out: dict[str, tuple[str, dict[int, Path], Made]] = {}
    for model in MEMORY:
        out[model] = (model, {0: runs / model}, {"next-track": {0: runs / f"{model}.jsonl"}})
    for model in NEURAL:
        seeds = range(args.seeds)
        out[model] = (
            model,
            {s: runs / f"{model}-seed{s}" for s in seeds},
            {"next-track": {s: runs / "runs" / model / f"seed{s}.jsonl" for s in seeds}},
        )
    if args.e4srec:
        finished = json.loads((args.e4srec / "runs.json").read_text())["runs"]
        for row, seeds in finished.items():
            out[row] = (
                "e4srec",
                {int(s): Path(run["model"]) for s, run in seeds.items()},
                {
                    "next-track": {int(s): Path(run["predictions"]) for s, run in seeds.items()},
                    "paper-sampled": {int(s): Path(run["paper_sampled"]) for s, run in seeds.items()},
                },
            )
    if args.zeroshot:
        folder, predictions = runs / "zeroshot-likelihood", runs / "zeroshot-likelihood.jsonl"
        if not (folder / "config.json").exists():
            mmbench("baseline", "train", "zeroshot", "--dataset", args.dataset, "--out", str(folder), "--quiet",
                    "--set", f"retriever={runs / 'sasrec-seed0'}")  # fmt: skip
        if not predictions.exists():
            mmbench("baseline", "predict", str(folder), "--dataset", args.dataset, "--out", str(predictions), "--quiet")  # fmt: skip
        out["zeroshot-likelihood"] = ("zeroshot", {0: folder}, {"next-track": {0: predictions}})
    return out


def write_rules(leaderboard: Path, baselines: dict[str, str]) -> None:
    """``baselines.yaml`` with the sample entries' lines replaced and the others kept."""
    rules = read_rules(leaderboard)
    kept = {slug: name for slug, name in rules.baselines.items() if not slug.startswith("sample-")}
    data = {
        "reference": rules.reference or REFERENCE,
        "baselines": {**kept, **dict(sorted(baselines.items()))},
    }
    header = (
        "# Maintainer-owned: the entries that are mmbench's baselines (slug: the baseline it is) and\n"
        "# the baseline each task's tables compare every entry with. An entry cannot declare itself a\n"
        "# baseline; a change here needs a maintainer's review. The sample- lines are written by\n"
        "# leaderboard/sample_entries.py.\n"
    )
    (leaderboard / RULES).write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, help="A build of the sample (mmbench build --sample).")
    parser.add_argument("--runs", type=Path, required=True, help="Folder of the baseline runs (reused).")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--e4srec", type=Path, default=None, help="benchmarks/e4srec_results.py's --out folder."
    )
    parser.add_argument(
        "--zeroshot", action="store_true", help="Add the zero-shot likelihood ranker (next-track)."
    )
    parser.add_argument("--leaderboard", type=Path, default=HERE)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "baseline_results.py"), "--dataset", args.dataset,
         "--out", str(args.runs), "--seeds", str(args.seeds)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    fingerprint = dataset_fingerprint(args.dataset)
    (args.leaderboard / SUBMISSIONS).mkdir(exist_ok=True)
    rows = models(args)
    for entry in read_entries(args.leaderboard).entries:
        if entry.metadata.dataset == "sample" and entry.slug.startswith("sample-"):
            shutil.rmtree(entry.folder)
    baselines = {}
    for task in ("next-track", "paper-sampled"):
        for row, (baseline, trained, made) in rows.items():
            if task == "paper-sampled" and row == "user-repeat":
                # On paper-sampled the negatives exclude the user's plays, so the only candidate the
                # user heard is the target: user-repeat writes the history-lookup probe's very file.
                continue
            if task == "paper-sampled" and baseline == "zeroshot":
                continue  # scoring all 200 candidates of 596 instances takes hours on this CPU
            folder = run_folder(row, trained, made, args.runs, args.dataset, task)
            description = described(baseline, trained[0])
            meta = args.runs / "leaderboard-meta" / f"{row}-{task}.yaml"
            meta.parent.mkdir(parents=True, exist_ok=True)
            data = metadata(description, baseline, task, sorted(trained), fingerprint)
            meta.write_text(yaml.safe_dump(data, sort_keys=False))
            slug = f"sample-{row}-{task}"
            mmbench("submit", str(folder), "--meta", str(meta), "--dataset", args.dataset,
                    "--leaderboard", str(args.leaderboard), "--slug", slug)  # fmt: skip
            baselines[slug] = baseline
            print(f"{slug}: submitted")
    write_rules(args.leaderboard, baselines)
    print(f"entries in {args.leaderboard / SUBMISSIONS}, baselines in {args.leaderboard / RULES}")


if __name__ == "__main__":
    main()
