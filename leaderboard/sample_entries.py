"""Regenerate the leaderboard's entries for mmbench's baselines on the synthetic sample.

    python leaderboard/sample_entries.py --dataset demo-out --runs results [--seeds 3]

Run it whenever the evaluator or the sample's dataset fingerprint changes. It trains every
baseline and protocol probe through `benchmarks/baseline_results.py` (resumable: finished runs are reused; the
neural ones once per seed), writes the paper-sampled predictions of the same trained models,
removes the old sample entries (those with ``dataset: sample`` and ``baseline: true``), and adds
each baseline's run folder with `mmbench submit`, so that the site is populated out of the box.
The entries are marked ``dataset: sample``: the site and README say they are synthetic.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mmbench.baselines import PROBES
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.submissions import SUBMISSIONS, read_entries

HERE = Path(__file__).resolve().parent
MEMORY = ("pop", "user-repeat", "sknn", *PROBES)
NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
NAMES = {
    "pop": "Popularity",
    "user-repeat": "User repeat",
    "sknn": "Session kNN",
    "history-lookup": "History lookup",
    "unseen-first": "Unseen first",
    "sasrec": "SASRec",
    "bert4rec": "BERT4Rec",
    "gru4rec": "GRU4Rec",
    "sasrec-mm": "SASRec-MM (audio + lyrics + MGPHot)",
}
MODALITIES = {"sasrec-mm": ["ids", "audio", "lyrics", "mgphot"]}


def mmbench(*args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("mmbench")), *args], check=True, stdout=subprocess.DEVNULL
    )


def run_folders(model: str, seeds: int, runs: Path, dataset: str, task: str) -> Path:
    """The folder of the model's predictions for ``task``, one file per run: next-track's come
    from the results script; paper-sampled's are predicted here from the same trained models."""
    trained = (
        {model: runs / model}
        if model in MEMORY
        else {f"seed{s}": runs / f"{model}-seed{s}" for s in range(seeds)}
    )
    folder = runs / f"leaderboard-{task}" / model
    folder.mkdir(parents=True, exist_ok=True)
    for name, model_dir in trained.items():
        out = folder / f"{name}.jsonl"
        if task == "next-track":
            source = runs / f"{model}.jsonl" if model in MEMORY else runs / "runs" / model / f"{name}.jsonl"
            shutil.copyfile(source, out)
        elif not out.exists():
            mmbench(
                "baseline",
                "predict",
                str(model_dir),
                "--task",
                task,
                "--dataset",
                dataset,
                "--out",
                str(out),
                "--quiet",
            )
    return folder


def metadata(model: str, task: str, seeds: int, fingerprint: str) -> dict:
    from importlib.metadata import version

    n = 1 if model in MEMORY else seeds
    return {
        "model": NAMES[model],
        "authors": ["mmbench maintainers"],
        "contact": "the mmbench issue tracker",
        "code": f"mmbench:baselines/{model.replace('-', '_')}.py",
        "mmbench_version": version("mmbench"),
        "dataset": "sample",
        "dataset_fingerprint": fingerprint,
        "task": task,
        "split": "test",
        "runs": n,
        "seeds": list(range(n)),
        "hyperparameter_selection": "validation" if model in NEURAL else "defaults",
        "modalities": MODALITIES.get(model, ["ids"]),
        "backbone": None,
        "training_data": "train",
        "hardware": f"{platform.machine()} CPU, 2 cores",
        "date": datetime.date.today(),
        "baseline": True,
        "probe": model in PROBES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, help="A build of the sample (mmbench build --sample).")
    parser.add_argument("--runs", type=Path, required=True, help="Folder of the baseline runs (reused).")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--leaderboard", type=Path, default=HERE)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "baseline_results.py"), "--dataset", args.dataset,
         "--out", str(args.runs), "--seeds", str(args.seeds)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    fingerprint = dataset_fingerprint(args.dataset)
    (args.leaderboard / SUBMISSIONS).mkdir(exist_ok=True)
    for entry in read_entries(args.leaderboard).entries:
        if entry.metadata.dataset == "sample" and entry.metadata.baseline:
            shutil.rmtree(entry.folder)
    for task in ("next-track", "paper-sampled"):
        for model in (*MEMORY, *NEURAL):
            if task == "paper-sampled" and model == "user-repeat":
                # On paper-sampled the negatives exclude the user's plays, so the only candidate the
                # user heard is the target: user-repeat writes the history-lookup probe's very file.
                continue
            folder = run_folders(model, args.seeds, args.runs, args.dataset, task)
            meta = args.runs / "leaderboard-meta" / f"{model}-{task}.yaml"
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(yaml.safe_dump(metadata(model, task, args.seeds, fingerprint), sort_keys=False))
            slug = f"sample-{model}-{task}"
            mmbench("submit", str(folder), "--meta", str(meta), "--dataset", args.dataset,
                    "--leaderboard", str(args.leaderboard), "--slug", slug)  # fmt: skip
            print(f"{slug}: submitted")
    print(f"entries in {args.leaderboard / SUBMISSIONS}")


if __name__ == "__main__":
    main()
