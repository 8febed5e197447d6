"""`mmbench reproduce`: from the LastFM-1K archive (or the embedded sample) to the results table
and the leaderboard entries of that build, in steps that each leave a checkpoint.

Every step is one `mmbench` command run in its own process (so its wall time and peak memory
are its own): the build, then per baseline its training, its predictions of both tasks' test
instances and their evaluation, the paired comparisons of each model with the reference
baseline and the protocol probes, the results table and the leaderboard entries. A step is done
when its output exists, so a second call resumes where the first stopped; ``costs.json`` keeps
each finished step's wall time, peak memory and amount of work.

Before it starts, the plan is printed with each step's estimated time and memory on this
machine: a step's cost is a fixed part plus a rate times its work (plays, windows, instances
times tracks, ...). The rates are this machine's own once a step of the same kind has finished
(read from ``costs.json``), else the reference rates of :data:`RATES`, measured on the
project's 2-core CPU.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmbench.errors import MmbenchError
from mmbench.files import write_atomic

PROBES = ("history-lookup", "unseen-first")
CLASSIC = ("pop", "user-repeat", "sknn")
NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
REFERENCE = "sasrec"  # the leaderboard's reference baseline of both tasks (leaderboard/baselines.yaml)
TASKS = ("next-track", "paper-sampled")
RAW_BYTES_PER_PLAY = 127  # the real plays TSV: 2.43 GB for 19.15 million lines
GZ_BYTES_PER_PLAY = 33  # lastfm-dataset-1K.tar.gz: 641 MB for the same lines


def real_data_settings(model: str, cuda: bool, content: list[str]) -> list[str]:
    """The ``--set`` values for a baseline on the real data (docs/baselines.md, "On the real
    data"): longer inputs and wider models; on a CPU the sampled softmax with negatives drawn by
    popularity (chosen on the full-size synthetic file's validation split) and at most 4 epochs
    (a time budget, docs/baselines.md); sknn's neighbours sampled from 1,000 sessions."""
    if model == "sknn":
        return ["sample_size=1000"]
    if model not in NEURAL:
        return []
    settings = ["max_len=200", "dim=128", "batch_size=256"]
    if not cuda:
        settings += ["loss=sampled", "negatives=1024", "popular_negatives=1.0", "epochs=4", "patience=2"]
    if model == "sasrec-mm":
        settings.append("content=" + json.dumps(content))
    return settings


# Reference rates on the project's 2-core CPU: (fixed seconds, seconds per unit of work, fixed
# GiB, GiB per play: what a step holds grows with the data). The units of work: the build of the
# archive, the plays its size gives (most of its time embeds the track names with the text
# encoder, whose number grows with the plays); the sample's build, none (it is one fixed input);
# memory-based training, plays; neural training, epochs x (plays + validation instances x tracks
# / 100: a play's training costs about as much as scoring 100 tracks); prediction, instances
# (sknn: x its 1,000 sampled sessions; neural: x tracks); evaluation and comparison, instances.
# Measured by this command on the full-size synthetic file (docs/baselines.md, "At full size")
# and on the sample. Neural training: SASRec's epochs there (sampled softmax, 241 s each with its
# validation pass), as if every epoch of the bound ran; once a training has finished here, its
# own rate per epoch it ran (work_done) replaces it.
RATES: dict[str, tuple[float, float, float, float]] = {
    "build": (60.0, 8.6e-5, 1.0, 1.2e-7),
    "build-sample": (270.0, 0.0, 2.6, 0.0),
    "train-memory": (3.0, 1.0e-6, 0.4, 2.0e-7),
    "train-neural": (20.0, 6.8e-6, 1.0, 1.6e-6),
    "predict-memory": (4.0, 3.0e-3, 0.4, 2.7e-7),
    "predict-sknn": (4.0, 2.3e-6, 0.4, 3.9e-7),
    "predict-neural": (5.0, 3.0e-8, 1.0, 2.0e-7),
    "evaluate": (6.0, 3.0e-4, 1.9, 4.4e-7),
    "compare": (2.0, 2.0e-5, 0.4, 2.0e-8),
}


@dataclass
class Sizes:
    """The amounts of work the estimates scale with: counted from the build report, or before
    the build only the plays, from the raw file's size (``counted`` False)."""

    plays: int
    tracks: int = 0
    instances: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    validation: int = 0
    counted: bool = True

    @classmethod
    def of(cls, dataset: Path, raw: Path | None) -> Sizes:
        report = dataset / "build_report.json"
        if report.is_file():
            stats = json.loads(report.read_text(encoding="utf-8"))["statistics"]
            instances = {task: stats["instances"][task]["test"] for task in TASKS}
            return cls(
                stats["plays"], stats["tracks"], instances, stats["instances"]["next-track"]["validation"]
            )
        if raw is None:  # the sample: about 60,000 plays
            return cls(plays=60_000, counted=False)
        size = sum(p.stat().st_size for p in ([raw] if raw.is_file() else raw.rglob("*.tsv")))
        per_play = GZ_BYTES_PER_PLAY if raw.name.endswith((".gz", ".tgz")) else RAW_BYTES_PER_PLAY
        return cls(plays=size // per_play, counted=False)


@dataclass
class Step:
    """One command of the plan: done when ``output`` exists."""

    name: str
    kind: str  # a key of RATES
    command: list[str]
    output: Path
    task: str = "next-track"
    epochs: int = 1

    def done(self) -> bool:
        return self.output.exists()

    def work(self, sizes: Sizes) -> float:
        """The units its kind's rate is per (see :data:`RATES`)."""
        if self.kind == "build-sample":
            return 0.0
        if self.kind in ("build", "train-memory"):
            return sizes.plays
        if self.kind == "train-neural":
            return self.epochs * (sizes.plays + sizes.validation * sizes.tracks / 100)
        instances = sizes.instances[self.task]
        return instances * {"predict-sknn": 1000, "predict-neural": sizes.tracks}.get(self.kind, 1)


@dataclass
class Plan:
    out: Path
    raw: Path | None
    steps: list[Step]
    models: dict[str, int]  # baseline -> runs (seeds)
    skipped: dict[str, str]  # baseline -> why it is not run here


def epochs_bound(model: str, overrides: list[str]) -> int:
    """The ``epochs`` bound of a neural baseline with ``overrides``."""
    from mmbench.baselines.runner import model_config

    return int(
        getattr(model_config(model, [o for o in overrides if o.split("=")[0] != "id_encoder"]), "epochs", 1)
    )


def make_plan(
    out: Path,
    raw: Path | None,
    models: list[str],
    seeds: int,
    cuda: bool,
    endpoint: str | None,
    build_args: list[str],
    model_args: dict[str, list[str]],
) -> Plan:
    """The steps from the archive (``raw``; None: the sample) to the results in ``out``. The
    baselines run in the given order (``--models all``: the probes and classic ones first, which
    take minutes, then the neural ones); the LLM baselines read the reference's trained folders,
    so the reference is moved before the first of them."""
    dataset = out / "dataset"
    llm = next((m for m in models if m in ("e4srec", "zeroshot")), None)
    if llm is not None and REFERENCE not in models[: models.index(llm)]:
        rest = [m for m in models if m != REFERENCE]
        models = [*rest[: rest.index(llm)], REFERENCE, *rest[rest.index(llm) :]]
    steps = [
        Step(
            "build",
            "build-sample" if raw is None else "build",
            [
                "build",
                *(["--sample"] if raw is None else ["--raw", str(raw)]),
                "--out",
                str(dataset),
                *build_args,
            ],
            dataset / "build_report.json",
        )
    ]
    runs: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for model in models:
        if model == "e4srec" and not cuda:
            skipped[model] = "needs a GPU (about 8 minutes per epoch on the sample on 2 CPU cores)"
            continue
        if model == "zeroshot" and not endpoint and not cuda:
            skipped[model] = "needs --endpoint (an OpenAI-compatible server) or a GPU"
            continue
        neural = model in (*NEURAL, "e4srec")
        runs[model] = seeds if neural else 1
        for seed in range(runs[model]):
            tag = f"{model}-seed{seed}" if neural else model
            folder = out / "models" / tag
            extra = model_args.get(model, [])
            if model == "e4srec":
                extra = [f"id_encoder={out / 'models' / f'{REFERENCE}-seed{seed}'}", *extra]
            if model == "zeroshot":
                extra = [f"retriever={out / 'models' / f'{REFERENCE}-seed0'}", *extra]
                if endpoint:
                    extra = ["backend=http", f"url={endpoint}", *extra]
            sets = [x for s in [*extra, *([f"seed={seed}"] if neural else [])] for x in ("--set", s)]
            kind = "neural" if neural else "memory"
            steps.append(
                Step(
                    f"train {tag}",
                    f"train-{kind}",
                    [
                        "baseline",
                        "train",
                        model,
                        "--dataset",
                        str(dataset),
                        "--out",
                        str(folder),
                        *sets,
                    ],
                    folder / "config.json",
                    epochs=epochs_bound(model, extra) if neural else 1,
                )
            )
            for task in TASKS:
                predictions = out / "predictions" / task / model / f"seed{seed}.jsonl"
                predict_kind = "predict-sknn" if model == "sknn" else f"predict-{kind}"
                steps.append(
                    Step(
                        f"predict {tag} {task}",
                        predict_kind,
                        [
                            "baseline",
                            "predict",
                            str(folder),
                            "--task",
                            task,
                            "--out",
                            str(predictions),
                        ],
                        predictions,
                        task,
                    )
                )
                report = out / "reports" / task / f"{model}-seed{seed}.json"
                steps.append(
                    Step(
                        f"evaluate {tag} {task}",
                        "evaluate",
                        [
                            "evaluate",
                            str(predictions),
                            "--dataset",
                            str(dataset),
                            "--task",
                            task,
                            "--json",
                            str(report),
                        ],
                        report,
                        task,
                    )
                )
    # Each model against the reference, and each model that is not a probe against each probe.
    pairs = [(m, REFERENCE) for m in runs if m not in (REFERENCE, *PROBES) and REFERENCE in runs]
    pairs += [(m, p) for m in runs if m not in PROBES for p in PROBES if p in runs]
    for task in TASKS:
        for model, other in pairs:
            report = out / "compare" / task / f"{model}-vs-{other}.json"
            steps.append(
                Step(
                    f"compare {model} vs {other} {task}",
                    "compare",
                    ["compare", str(out / "predictions" / task / other), str(out / "predictions" / task / model),
                     "--dataset", str(dataset), "--task", task, "--k", "10", "--json", str(report)],
                    report,
                    task,
                )
            )  # fmt: skip
    return Plan(out, raw, steps, runs, skipped)


# -- costs ----------------------------------------------------------------------------------


def read_costs(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "costs.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def estimate(step: Step, sizes: Sizes, costs: dict[str, dict[str, Any]]) -> tuple[float, float] | None:
    """Seconds and GiB of ``step``: from this machine's finished steps of its kind (of its task
    where there are some) when there are any, else the reference rates. Time: a least-squares
    line through their (work, seconds) where the works differ, else the reference fixed part
    and the median rate through them; memory: the median GiB per play above the fixed part.
    None for a step after the build while only the raw file's size is known."""
    if not sizes.counted and not step.kind.startswith("build"):
        return None
    fixed_s, rate_s, fixed_gib, rate_gib = RATES[step.kind]
    measured = {
        name: c for name, c in costs.items() if c["kind"] == step.kind and c["work"] > 0 and c.get("plays")
    }
    # (costs.json files older than the "task" field: the step's name ends with it)
    same_task = [c for name, c in measured.items() if c.get("task", name.rsplit(" ", 1)[-1]) == step.task]
    measured_steps = same_task or list(measured.values())
    if measured_steps:
        fixed_s, rate_s = time_line([(c["work"], c["seconds"]) for c in measured_steps], fixed_s)
        rate_gib = statistics.median(max(0.0, c["peak_gib"] - fixed_gib) / c["plays"] for c in measured_steps)
    return fixed_s + rate_s * step.work(sizes), fixed_gib + rate_gib * sizes.plays


def time_line(points: list[tuple[float, float]], fixed_s: float) -> tuple[float, float]:
    """(fixed seconds, seconds per unit of work) through measured (work, seconds) points: the
    least-squares line, both parts kept non-negative, where the works differ; else ``fixed_s``
    and the median rate above it."""
    works = [w for w, _ in points]
    if len(set(works)) > 1:
        slope, intercept = statistics.linear_regression(works, [t for _, t in points])
        if slope > 0 and intercept >= 0:
            return intercept, slope
        if slope > 0:  # a line through 0: the rate alone
            return 0.0, sum(t for _, t in points) / sum(works)
    return fixed_s, statistics.median(max(0.0, t - fixed_s) / w for w, t in points)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_table(plan: Plan, sizes: Sizes, costs: dict[str, dict[str, Any]]) -> str:
    """The plan as printed before the run: each step, done (with its measured cost) or its
    estimate, and the total still to run."""
    lines = [f"{'step':52s} {'time':>9s} {'memory':>9s}  status"]
    left, peak = 0.0, 0.0
    for step in plan.steps:
        if step.done():
            cost = costs.get(step.name)
            measured = (
                f"{duration(cost['seconds']):>9s} {cost['peak_gib']:>7.1f} G"
                if cost
                else f"{'':>9s} {'':>9s}"
            )
            lines.append(f"{step.name:52s} {measured}  done")
            continue
        guess = estimate(step, sizes, costs)
        if guess is None:
            lines.append(f"{step.name:52s} {'':>9s} {'':>9s}  to run (estimated once the build is done)")
            continue
        seconds, gib = guess
        left, peak = left + seconds, max(peak, gib)
        lines.append(f"{step.name:52s} ~{duration(seconds):>8s} ~{gib:>6.1f} G  to run")
    for model, why in plan.skipped.items():
        lines.append(f"{model:52s} {'':>9s} {'':>9s}  skipped: {why}")
    if not sizes.counted:
        lines.append(
            "(the steps after the build are estimated from its counts: the plan is printed again then)"
        )
    lines.append(f"{'to run':52s} ~{duration(left):>8s} ~{peak:>6.1f} G  (largest step's memory)")
    return "\n".join(lines)


def mmbench_command(*args: str) -> list[str]:
    """The command line of ``mmbench ARGS`` with this environment's console script."""
    exe = Path(sys.executable).with_name("mmbench")
    return [str(exe) if exe.exists() else "mmbench", *args]


def measured_run(
    command: list[str], env: dict[str, str] | None = None, stdout: bool = False
) -> tuple[int, float, float]:
    """Run ``command`` in its own process: its exit code, wall seconds and peak RSS in GiB (the
    child's own, from ``os.wait4``). Its stdout is dropped unless ``stdout``."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=None if stdout else subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 2**20


def run_step(step: Step, sizes_after: Callable[[], Sizes], env: dict[str, str]) -> dict[str, Any]:
    """Run one step's command in its own process; its wall time and peak memory."""
    step.output.parent.mkdir(parents=True, exist_ok=True)
    code, seconds, peak_gib = measured_run(mmbench_command(*step.command), env)
    if code != 0:
        raise MmbenchError(
            f"reproduce: step {step.name!r} failed (exit {code}): mmbench {' '.join(step.command)}"
        )
    sizes = sizes_after()
    return {
        "kind": step.kind,
        "task": step.task,
        "seconds": round(seconds, 2),
        "peak_gib": round(peak_gib, 3),
        "work": work_done(step, sizes),
        "plays": sizes.plays,
    }


def work_done(step: Step, sizes: Sizes) -> float:
    """The units of work a finished step did: a neural training's epochs are those it ran (its
    config.json's record), not the bound, so that a run that stopped early does not lower the
    rate that the next estimate uses."""
    if step.kind == "train-neural" and step.output.is_file():
        training = json.loads(step.output.read_text(encoding="utf-8")).get("training") or {}
        if training.get("epochs"):
            return replace(step, epochs=len(training["epochs"])).work(sizes)
    return step.work(sizes)


def content_configs(dataset: Path) -> list[str]:
    """The build's content configs (what sasrec-mm fuses on the real data)."""
    report = dataset / "build_report.json"
    return list(json.loads(report.read_text(encoding="utf-8"))["content"]) if report.is_file() else []


def model_settings(
    models: list[str], raw: Path | None, cuda: bool, device: str, dataset: Path, given: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Each baseline's ``--set`` values: on the real data :func:`real_data_settings`, the device
    of the models that use one, then the user's own (``--set-model``), which win."""
    return {
        m: [*(real_data_settings(m, cuda, content_configs(dataset)) if raw is not None else []),
            *([f"device={device}"] if m in (*NEURAL, "e4srec", "zeroshot") else []), *given.get(m, [])]
        for m in models
    }  # fmt: skip


def check_seeds(out: Path, seeds: int) -> None:
    """Refuse to resume a folder made with another number of seeds: its comparisons and entries
    would mix the two."""
    stamp = out / "seeds.txt"
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() != str(seeds):
        raise MmbenchError(
            f"{out} was made with --seeds {stamp.read_text(encoding='utf-8').strip()}, not {seeds}; "
            "use another --out or the same --seeds"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(stamp, f"{seeds}\n")


def reproduce(
    out: Path,
    raw: Path | None,
    models: list[str],
    seeds: int,
    device: str,
    endpoint: str | None,
    build_args: list[str],
    model_args: dict[str, list[str]],
    echo: Callable[[str], None],
) -> Path:
    """Run (or resume) every step into ``out``; write ``results.md``, ``costs.json`` and the
    leaderboard entries under ``out/leaderboard``; return the results file."""
    from mmbench.devices import resolve_device

    cuda = resolve_device(device).startswith("cuda")
    dataset = out / "dataset"

    def planned() -> Plan:
        settings = model_settings(models, raw, cuda, device, dataset, model_args)
        return make_plan(out, raw, models, seeds, cuda, endpoint, build_args, settings)

    check_seeds(out, seeds)
    out.mkdir(parents=True, exist_ok=True)
    plan, costs = planned(), read_costs(out)
    echo(plan_table(plan, Sizes.of(dataset, raw), costs))
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    for index in range(len(plan.steps)):
        if index == 1:  # the build is done: the commands and sizes of the real build
            plan = planned()
            if "build" in costs and not any(s.done() for s in plan.steps[1:]):
                echo(plan_table(plan, Sizes.of(dataset, raw), costs))
        step = plan.steps[index]
        if step.done():
            continue
        guess = estimate(step, Sizes.of(dataset, raw), costs) or (0.0, 0.0)
        echo(f"[{index + 1}/{len(plan.steps)}] {step.name} (~{duration(guess[0])}, ~{guess[1]:.1f} GiB)")
        costs[step.name] = run_step(step, lambda: Sizes.of(dataset, raw), env)
        write_atomic(out / "costs.json", json.dumps(costs, indent=2) + "\n")
    refused = write_entries(plan, raw is None, echo)
    results = write_results(plan, costs, refused)
    echo(f"results: {results}; entries: {out / 'leaderboard'}")
    return results


def _cell(reports: list[dict], metric: str) -> str:
    values = [r["metrics"][metric]["value"] for r in reports]
    first = reports[0]["metrics"][metric]
    interval = f" [{first['ci_low']:.4f}, {first['ci_high']:.4f}]"
    if len(values) == 1:
        return f"{values[0]:.4f}{interval}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}{interval}"


def write_results(plan: Plan, costs: dict[str, dict[str, Any]], refused: dict[str, str]) -> Path:
    """``results.md``: per task, each model's metrics (mean ± std over its runs, the first run's
    95% interval), its paired comparisons with the reference and the probes, the leaderboard
    entries that were refused and why, then every step's measured cost."""
    out = plan.out
    lines = [f"# Results of `mmbench reproduce` ({'the sample' if plan.raw is None else plan.raw.name})", ""]
    for task in TASKS:
        lines += [
            f"## {task}",
            "",
            "| model | runs | NDCG@10 | Recall@10 | MRR@10 |",
            "|---|---:|---|---|---|",
        ]
        for model, runs in plan.models.items():
            reports = [
                json.loads((out / "reports" / task / f"{model}-seed{s}.json").read_text(encoding="utf-8"))
                for s in range(runs)
            ]
            cells = " | ".join(_cell(reports, m) for m in ("ndcg@10", "recall@10", "mrr@10"))
            lines.append(f"| `{model}` | {runs} | {cells} |")
        lines += ["", "| B vs A | n | NDCG@10 B − A [95% interval] | p (Holm) |", "|---|---:|---|---:|"]
        for step in (s for s in plan.steps if s.kind == "compare" and s.task == task):
            model, other = step.output.stem.split("-vs-")
            result = json.loads(step.output.read_text(encoding="utf-8"))
            row = next(r for r in result["metrics"] if r["metric"] == "ndcg@10")
            star = " *" if row["significant"] else ""
            lines.append(
                f"| `{model}` vs `{other}` | {result['n_instances']} | {row['difference']:+.4f} "
                f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] | {row['p_randomization_holm']:.2g}{star} |"
            )
        lines.append("")
    if refused:
        lines += ["## Leaderboard entries not written", ""]
        lines += [f"- `{slug}`: {why}" for slug, why in refused.items()]
        lines.append("")
    total = sum(c["seconds"] for c in costs.values())
    largest = max(costs, key=lambda name: costs[name]["seconds"], default=None)
    lines += [
        "## Cost of each step on this machine",
        "",
        f"Total {duration(total)}"
        + (f"; the largest step: {largest} ({duration(costs[largest]['seconds'])})." if largest else "."),
        "",
        "| step | wall time | peak memory (GiB) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {duration(c['seconds'])} | {c['peak_gib']:.2f} |" for name, c in costs.items()]
    path = out / "results.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def write_entries(plan: Plan, sample: bool, echo: Callable[[str], None]) -> dict[str, str]:
    """A leaderboard entry per model and task under ``out/leaderboard`` (once each), with the
    metadata read from the trained folders; returns the entries the leaderboard refused as
    copies of one written before (the probes' come first), with its reason."""
    import yaml

    from mmbench.fingerprint import dataset_fingerprint
    from mmbench.leaderboard.baseline_entries import described, metadata
    from mmbench.leaderboard.submissions import COPY

    out, dataset = plan.out, plan.out / "dataset"
    fingerprint = dataset_fingerprint(dataset)
    prefix = "sample" if sample else "lastfm1k-mm"
    refused: dict[str, str] = {}
    for task in TASKS:
        # The probes first: a model whose rankings repeat a probe's is the one refused.
        for model, runs in sorted(plan.models.items(), key=lambda item: item[0] not in PROBES):
            slug = f"{prefix}-{model}-{task}"
            if (out / "leaderboard" / "submissions" / slug / "results.json").exists():
                continue
            tag = f"{model}-seed0" if model in (*NEURAL, "e4srec") else model
            data = metadata(
                described(model, out / "models" / tag), model, task, list(range(runs)), fingerprint, prefix
            )
            meta = out / "leaderboard-meta" / f"{slug}.yaml"
            meta.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(meta, yaml.safe_dump(data, sort_keys=False))
            (out / "leaderboard" / "submissions").mkdir(parents=True, exist_ok=True)
            command = mmbench_command(
                "submit", str(out / "predictions" / task / model), "--meta", str(meta), "--dataset", str(dataset),
                "--leaderboard", str(out / "leaderboard"), "--slug", slug,
            )  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            why = result.stderr.strip().removeprefix("error: ")
            if result.returncode != 0 and why.endswith(COPY):
                # Rankings that a rule written first already gives (user-repeat's paper-sampled
                # ranking is the history-lookup probe's, whose negatives exclude the user's plays;
                # on data without repeat listening pop's is too): reported, not an error.
                refused[slug] = why
                echo(f"entry {slug} not written: {why}")
                continue
            if result.returncode != 0:
                raise MmbenchError(f"reproduce: the entry {slug} was refused: {why}")
            echo(f"entry {slug}")
    return refused
