"""The zero-shot section of docs/baselines.md: each scorer with the packaged SmolLM2-135M on the
sample, shuffled and calibrated, beside the given-order ablation and its retriever, on the same
instances; the settings chosen on validation; position bias; speed.

Steps (each one's output is kept in ``--out``, so an interrupted run resumes):

1. References: sasrec (seed 0) predictions on next-track validation and test (the retriever), pop
   on paper-sampled test.
2. Choices, on ``--validation`` random next-track validation instances (sasrec's top 20 reranked,
   the model loaded once, each forward pass made once and shared by the settings that need it):
   the likelihood's ``length_norm`` x ``newline`` x ``calibrate`` (PMI) and the verbalizer's
   ``calibrate``; the best validation NDCG@10 of each scorer is taken. Nothing is chosen on test.
3. Test rows through the CLI (``mmbench baseline train zeroshot`` / ``predict``), each on a fixed
   random subset of instances (``instances=N``, seed 0: rows of the same size rerank the same
   ones; listwise, the slowest, fewer), reported over those instances only, beside the retriever on the same instances: each
   scorer shuffled (the verbalizer with ``--passes`` passes), and shown in the given order (one
   pass, the ablation); on paper-sampled, the 200 candidates of each instance against pop.
   Paired comparisons (randomization test, Holm over the three metrics) of each row with the
   retriever and of shuffled with given order.
4. Position bias on ``--bias`` test instances: Kendall's tau between one pass's scores with
   sasrec's top 20 shown in order and reversed.
5. Speed: candidates scored per second with the model loaded (median of ``--repeats`` passes over
   the shortlists of ``--speed`` instances); with ``--http``, listwise answers per second from a
   real ``transformers serve`` at 1 and 4 requests in flight.

Run: ``python benchmarks/zeroshot_results.py --dataset DIR --out DIR2 [--docs]``; ``--docs`` writes
the tables between the ``zeroshot-results`` markers of docs/baselines.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from baseline_results import DOCS, METRICS, sh, write_block  # the sibling script

# name: (task, settings, instances option)
ROWS = {
    "likelihood": ("next-track", ["scorer=likelihood"], "test"),
    "likelihood, given order": ("next-track", ["scorer=likelihood", "order=given"], "test"),
    "verbalizer": ("next-track", ["scorer=verbalizer", "passes={passes}"], "test"),
    "verbalizer, given order": ("next-track", ["scorer=verbalizer", "order=given"], "test"),
    "listwise": ("next-track", ["scorer=listwise"], "listwise"),
    "listwise, given order": ("next-track", ["scorer=listwise", "order=given"], "listwise"),
    "likelihood (paper-sampled)": ("paper-sampled", ["scorer=likelihood"], "paper_sampled"),
    "verbalizer (paper-sampled)": ("paper-sampled", ["scorer=verbalizer"], "paper_sampled"),
    "verbalizer, given order (paper-sampled)": (
        "paper-sampled",
        ["scorer=verbalizer", "order=given"],
        "paper_sampled",
    ),
}
LIKELIHOOD_GRID = [
    {"length_norm": norm, "newline": newline, "calibrate": calibrate}
    for norm, newline, calibrate in itertools.product(("mean", "sum"), (True, False), (False, True))
]
VERBALIZER_GRID = [{"calibrate": False}, {"calibrate": True}]


def reference(model: str, task: str, split: str, args: argparse.Namespace) -> tuple[Path, Path]:
    """A trained reference model's folder and its predictions on ``task``/``split``."""
    folder = args.out / "models" / model
    path = args.out / f"{model}-{task}-{split}.jsonl"
    if not (folder / "config.json").exists():
        sh("baseline", "train", model, "--dataset", args.dataset, "--out", str(folder), "--quiet")
    if not path.exists():
        sh(
            "baseline",
            "predict",
            str(folder),
            "--task",
            task,
            "--split",
            split,
            "--out",
            str(path),
            "--quiet",
        )
    return folder, path


def local_model() -> Any:
    """The packaged model, remembering every score it computes: settings that share a forward
    pass (the likelihood's PMI and norm, the verbalizer's calibration) compute it once."""
    from mmbench.baselines import zeroshot as zs

    class Remembering(zs.LocalModel):
        def __init__(self) -> None:
            super().__init__("", "auto")
            self.seen: dict[tuple, Any] = {}

        def continuation_logprobs(self, prompt: str, continuations: list[str], batch_size: int) -> list:
            todo = [c for c in dict.fromkeys(continuations) if (prompt, c) not in self.seen]
            if todo:
                found = super().continuation_logprobs(prompt, todo, batch_size)
                self.seen.update(((prompt, c), v) for c, v in zip(todo, found, strict=True))
            return [self.seen[prompt, c] for c in continuations]

        def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
            key = (prompt, tuple(tokens))
            if key not in self.seen:
                self.seen[key] = super().next_token_logprobs(prompt, tokens)
            return self.seen[key]

    return Remembering()


def subset_scores(dataset: str, task: str, split: str, path: Path, ids: list[str]) -> dict[str, Any]:
    """NDCG@10, Recall@10 and MRR@10 over the instances ``ids`` of a predictions file (the
    evaluator's ranks and formulas, a 95% bootstrap interval), and those ranks."""
    from mmbench.evaluator import Evaluator, summarize_counts
    from mmbench.metrics import metric_by_rank

    evaluator = Evaluator(task, split, dataset)
    ranks = evaluator.read_file(path, allow_missing=True).ranks
    wanted = set(ids)
    mask = np.asarray([i in wanted for i in evaluator.instance_ids])
    table = np.stack([metric_by_rank(m.split("@")[0], 10) for m in METRICS], axis=1)
    hist = np.bincount(ranks[mask], minlength=101)
    metrics = summarize_counts(hist, table, list(METRICS), 1000, np.random.default_rng(0))
    return {"metrics": metrics, "ranks": ranks[mask].tolist(), "n": int(mask.sum())}


def choose(args: argparse.Namespace, retriever: Path) -> dict[str, Any]:
    """Step 2: each grid point's validation NDCG@10 over the same random validation instances."""
    path = args.out / "validation-choices.json"
    if path.exists():
        return json.loads(path.read_text())
    from mmbench.baselines import zeroshot as zs
    from mmbench.baselines.data import Benchmark, instance_inputs, popularity_order
    from mmbench.baselines.runner import model_config, predict

    data = Benchmark(args.dataset)
    rows = instance_inputs(data, "next-track", "validation")
    picked = np.random.default_rng(0).choice(len(rows), min(args.validation, len(rows)), replace=False)
    rows = [rows[i] for i in sorted(picked)]
    ids = [r["instance_id"] for r in rows]
    base_config = model_config("zeroshot").replace(retriever=str(retriever))
    # sasrec's predictions leave the prefix out already (the build's rule), as rank_instances would.
    base = zs.retriever_rankings(base_config, data, "next-track", "validation", ids, args.out, predict)
    pop = {t: i for i, t in enumerate(popularity_order(data))}
    texts, model = zs.TrackTexts(data, mgphot=False), local_model()
    results: dict[str, Any] = {"instances": len(ids), "likelihood": [], "verbalizer": []}
    for scorer, grid in (("likelihood", LIKELIHOOD_GRID), ("verbalizer", VERBALIZER_GRID)):
        for settings in grid:
            config = base_config.replace(scorer=scorer, **settings)
            ranker = zs.ZeroShotScorer(model, config)
            out = args.out / f"validation-{scorer}-{'-'.join(str(v) for v in settings.values())}.jsonl"
            with out.open("w", encoding="utf-8") as f:
                for n, row in enumerate(rows):
                    order = base[row["instance_id"]]
                    shortlist = order[: config.shortlist]
                    tiebreak = np.asarray([pop.get(t, len(pop)) for t in shortlist])
                    best = ranker.rank(
                        zs.history_prompt(row, texts, config), [texts.line(t) for t in shortlist],
                        np.random.default_rng([config.seed, n]), tiebreak,
                    )  # fmt: skip
                    ranked = [shortlist[i] for i in best] + order[config.shortlist :]
                    f.write(
                        json.dumps({"instance_id": row["instance_id"], "predictions": ranked[:100]}) + "\n"
                    )
            score = subset_scores(args.dataset, "next-track", "validation", out, ids)["metrics"]["ndcg@10"][
                "value"
            ]
            results[scorer].append({**settings, "ndcg@10": score})
            print(f"validation {scorer} {settings}: NDCG@10 {score:.4f}", flush=True)
    retriever_path = reference("sasrec", "next-track", "validation", args)[1]
    results["retriever"] = subset_scores(args.dataset, "next-track", "validation", retriever_path, ids)[
        "metrics"
    ]["ndcg@10"]["value"]
    path.write_text(json.dumps(results, indent=1) + "\n")
    return results


def best(choices: dict[str, Any], scorer: str) -> list[str]:
    top = max(choices[scorer], key=lambda r: r["ndcg@10"])
    return [f"{k}={json.dumps(v)}" for k, v in top.items() if k != "ndcg@10"]


def test_row(name: str, args: argparse.Namespace, retriever: Path, choices: dict[str, Any]) -> dict[str, Any]:
    """Step 3: one row's predictions through the CLI, its wall time and what its answers did."""
    task, settings, size = ROWS[name]
    scorer = settings[0].split("=")[1]
    chosen = best(choices, scorer) if scorer in ("likelihood", "verbalizer") else []
    n = getattr(args, size)
    settings = (
        [s.format(passes=args.passes) for s in settings]
        + chosen
        + [f"retriever={retriever}", f"instances={n}"]
    )
    slug = name.replace(", ", "-").replace(" ", "-").replace("(", "").replace(")", "")
    folder, path = args.out / "models" / f"zs-{slug}", args.out / f"zs-{slug}.jsonl"
    record_path = path.with_suffix(".run.json")
    if not record_path.exists():
        sh("baseline", "train", "zeroshot", "--dataset", args.dataset, "--out", str(folder), "--quiet",
           *[x for s in settings for x in ("--set", s)])  # fmt: skip
        start = time.perf_counter()
        sh("baseline", "predict", str(folder), "--task", task, "--out", str(path), "--quiet")
        seconds = time.perf_counter() - start
        answers = json.loads((folder / f"zeroshot-{task}-test.json").read_text())
        record_path.write_text(json.dumps({"seconds": seconds, "settings": settings, **answers}) + "\n")
    return {"path": path, "task": task, **json.loads(record_path.read_text())}


def paired(a: list[int], b: list[int]) -> str:
    """B - A in NDCG@10 with its interval and Holm-corrected randomization p (three metrics)."""
    from mmbench.compare import compare_ranks

    result = compare_ranks(np.asarray(a), np.asarray(b), ks=[10], n_bootstrap=1000, n_permutations=2000)
    row = next(r for r in result["metrics"] if r["metric"] == "ndcg@10")
    star = " *" if row["significant"] else ""
    return f"{row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], p {row['p_randomization_holm']:.2g}{star}"


def shortlists(args: argparse.Namespace, retriever: Path, n: int) -> tuple[Any, list, Any]:
    """The model, (prompt, sasrec's top 20 as lines) of the first ``n`` test instances, the config."""
    from mmbench.baselines import zeroshot as zs
    from mmbench.baselines.data import Benchmark, instance_inputs
    from mmbench.baselines.runner import model_config, predict

    data = Benchmark(args.dataset)
    texts = zs.TrackTexts(data, mgphot=False)
    config = model_config("zeroshot").replace(retriever=str(retriever))
    rows = instance_inputs(data, "next-track", "test")[:n]
    base = zs.retriever_rankings(
        config, data, "next-track", "test", [r["instance_id"] for r in rows], None, predict
    )
    cases = [
        (zs.history_prompt(r, texts, config), [texts.line(t) for t in base[r["instance_id"]][:20]])
        for r in rows
    ]
    return zs.LocalModel("", "auto"), cases, config


BIAS = {
    "likelihood": {"scorer": "likelihood"},
    "verbalizer": {"scorer": "verbalizer", "calibrate": False},
    "verbalizer, calibrated": {"scorer": "verbalizer", "calibrate": True},
    "listwise": {"scorer": "listwise"},
}


def position_bias(args: argparse.Namespace, retriever: Path) -> dict[str, list[float]]:
    from mmbench.baselines import zeroshot as zs

    path = args.out / "position-bias.json"
    if not path.exists():
        model, cases, config = shortlists(args, retriever, args.bias)
        result = {
            name: [zs.position_bias(model, prompt, lines, config.replace(**s)) for prompt, lines in cases]
            for name, s in BIAS.items()
        }
        path.write_text(json.dumps(result) + "\n")
    return json.loads(path.read_text())


def throughput(args: argparse.Namespace, retriever: Path) -> dict[str, Any]:
    from mmbench.baselines import zeroshot as zs

    path = args.out / "throughput.json"
    if not path.exists():
        model, cases, config = shortlists(args, retriever, args.speed)
        rates: dict[str, list[float]] = {}
        for name, settings in BIAS.items():
            scorer = zs.ZeroShotScorer(model, config.replace(**settings))
            rates[name] = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for prompt, lines in cases:
                    scorer.one_pass(prompt, lines, np.arange(len(lines)), np.arange(len(lines)))
                rates[name].append(sum(len(lines) for _, lines in cases) / (time.perf_counter() - start))
        path.write_text(json.dumps({"instances": len(cases), "rates": rates}) + "\n")
    return json.loads(path.read_text())


def http_throughput(args: argparse.Namespace, retriever: Path) -> dict[str, Any]:
    """Listwise answers per second from a real `transformers serve` on the packaged model, with
    1 and 4 requests in flight (the same 8 prompts; nothing cached)."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import urllib.request

    from mmbench.baselines import zeroshot as zs
    from mmbench.llm import save_packaged_llm

    path = args.out / "http-throughput.json"
    if path.exists():
        return json.loads(path.read_text())
    folder = save_packaged_llm(Path(tempfile.mkdtemp()) / "smollm2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("transformers")
    server = subprocess.Popen(
        [str(exe), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                time.sleep(1)
        _, cases, _ = shortlists(args, retriever, 8)
        result = {}
        for concurrency in (1, 4):
            served = zs.HttpModel(url, str(folder), "", concurrency=concurrency, requests_per_second=0)
            body = [
                (
                    {"messages": zs.listwise_messages(p, lines[:10]), "max_tokens": 60, "temperature": 0},
                    zs.chat_text,
                )
                for p, lines in cases
            ]
            start = time.perf_counter()
            served.client.request_many("chat/completions", body, "a listwise ranking", concurrency)
            result[str(concurrency)] = len(body) / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
    path.write_text(json.dumps(result) + "\n")
    return result


def cell(metrics: dict[str, Any], name: str) -> str:
    m = metrics[name]
    return f"{m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--validation", type=int, default=100)
    parser.add_argument("--test", type=int, default=150)
    parser.add_argument("--listwise", type=int, default=40)
    parser.add_argument("--paper-sampled", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--bias", type=int, default=20)
    parser.add_argument("--speed", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="measure concurrency against transformers serve")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--docs", action="store_true", help="write the tables into docs/baselines.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from mmbench.fingerprint import dataset_fingerprint

    sasrec, _ = reference("sasrec", "next-track", "validation", args)
    _, sasrec_test = reference("sasrec", "next-track", "test", args)
    _, pop_ps = reference("pop", "paper-sampled", "test", args)
    choices = choose(args, sasrec)
    out = [
        f"Measured on the sample (fingerprint `{dataset_fingerprint(Path(args.dataset))[:12]}…`) with "
        f"`python benchmarks/zeroshot_results.py --dataset DIR --out DIR2 --validation {args.validation} "
        f"--test {args.test} --listwise {args.listwise} --paper-sampled {args.paper_sampled} --passes {args.passes} "
        f"--bias {args.bias} --speed {args.speed} --repeats {args.repeats}"
        f"{' --http' if args.http else ''} --docs`, the packaged SmolLM2-135M (fp32, a 2-core CPU).\n",
        f"Choices on {choices['instances']} random next-track validation instances (sasrec's top 20 reranked; "
        f"sasrec alone: NDCG@10 {choices['retriever']:.4f}):\n",
        "| scorer | length_norm | newline | calibrate | validation NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for scorer in ("likelihood", "verbalizer"):
        top = max(choices[scorer], key=lambda r: r["ndcg@10"])
        for r in choices[scorer]:
            mark = " (chosen)" if r is top else ""
            out.append(
                f"| {scorer} | {r.get('length_norm', '')} | {r.get('newline', '')} | {r['calibrate']} | {r['ndcg@10']:.4f}{mark} |"
            )
    runs = {name: test_row(name, args, sasrec, choices) for name in args.only}
    for task, against, against_name in (
        ("next-track", sasrec_test, "sasrec (retriever)"),
        ("paper-sampled", pop_ps, "pop"),
    ):
        names = [n for n in runs if runs[n]["task"] == task]
        if not names:
            continue
        out += [
            f"\n{task} test, each row over its reranked instances, beside {against_name} on the same ones "
            "(NDCG@10, Recall@10, MRR@10 with 95% bootstrap intervals; B - A: NDCG@10 difference, "
            "paired randomization p, Holm over the three metrics, * significant):\n",
            f"| scorer | instances | NDCG@10 | Recall@10 | MRR@10 | {against_name} NDCG@10 | B - A vs {against_name.split(' ')[0]} | shuffled - given | candidates named |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        scored = {}
        for name in names:
            run = runs[name]
            mine = subset_scores(args.dataset, task, "test", run["path"], run["reranked"])
            ref = subset_scores(args.dataset, task, "test", against, run["reranked"])
            scored[name] = (mine, ref)
        for name in names:
            run, (mine, ref) = runs[name], scored[name]
            given = name.replace(" (paper-sampled)", "").split(",")[0]
            partner = next((n for n in names if n != name and n.startswith(f"{given}, given order")), None)
            versus = ""
            if partner and "given" not in name:
                assert runs[partner]["reranked"] == run["reranked"], (name, partner)
                versus = paired(scored[partner][0]["ranks"], mine["ranks"])
            named = (
                f"{run['candidates_named'] / run['candidates_shown']:.0%}" if run["candidates_shown"] else ""
            )
            extra = (
                f" ({run['answers_naming_none']} answers named none, {run['made_up_lines']} made-up lines)"
                if run["candidates_shown"]
                else ""
            )
            out.append(
                f"| `{name}` | {mine['n']} | " + " | ".join(cell(mine["metrics"], m) for m in METRICS)
                + f" | {ref['metrics']['ndcg@10']['value']:.4f} | {paired(ref['ranks'], mine['ranks'])} | {versus} | {named}{extra} |"
            )  # fmt: skip
    bias = position_bias(args, sasrec)
    out += [
        f"\nPosition bias on {len(next(iter(bias.values())))} test instances (sasrec's top 20 shown in order and "
        "reversed, one pass each; Kendall's tau between the two score vectors: 1 when the place does not move a "
        "score):\n",
        "| scorer | tau, mean | median |",
        "|---|---|---|",
    ]
    for name, taus in bias.items():
        # tau is undefined where a pass's scores are all equal (a listwise answer naming nothing).
        defined = [t for t in taus if t == t]
        missing = (
            f" ({len(taus) - len(defined)} undefined: every score equal)" if len(defined) < len(taus) else ""
        )
        out.append(f"| {name} | {statistics.mean(defined):.3f} | {statistics.median(defined):.3f}{missing} |")
    speed = throughput(args, sasrec)
    out += [
        f"\nSpeed with the model loaded (candidates scored per second, one pass over sasrec's top 20 of "
        f"{speed['instances']} test instances, median and range of {args.repeats} runs):\n",
        "| scorer | candidates/s | range |",
        "|---|---|---|",
    ]
    out += [
        f"| {n} | {statistics.median(r):.1f} | {min(r):.1f}-{max(r):.1f} |" for n, r in speed["rates"].items()
    ]
    if args.http:
        rates = http_throughput(args, sasrec)
        out.append(
            f"\nOver http (`transformers serve`, 8 listwise prompts of 10 candidates, 60 tokens): "
            f"{rates['1']:.2f} answers/s one at a time, {rates['4']:.2f} with 4 in flight "
            f"({rates['4'] / rates['1']:.2f}x).\n"
        )
    text = "\n".join(out) + "\n"
    print(text)
    if args.docs:
        write_block(DOCS, "zeroshot-results", text)


if __name__ == "__main__":
    main()
