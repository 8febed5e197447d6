"""Zero-shot LLM rankers: a language model never trained on the data reads the listening history
as text (``artist - title`` lines, built from the ``tracks`` config) and ranks candidate tracks.

Candidates: on ``paper-sampled``, the instance's own; on ``next-track``, the first ``shortlist``
tracks of a retriever (a trained baseline folder or a predictions file), and the final ranking is
the reranked shortlist followed by the retriever's remaining order (100 distinct ids).

Scorers:

- ``likelihood``: the length-normalised log-likelihood of each candidate's line after the
  prompt. The prompt runs once; its key/value cache is repeated over a batch of candidates.
- ``verbalizer``: the candidates listed with letters (at most ``group_size`` per prompt), one
  forward pass, the next-token log-probabilities of the letters (in the spirit of LlamaRec, Yue
  et al. 2023); ``bootstrap`` shuffled orders are averaged to cancel the position bias.
- ``listwise``: the model writes a ranking of the numbered shortlist (as in LLMRank, Hou et al.
  2024), parsed and matched to the candidates; what it leaves out keeps the retriever's order.

Backends: ``local`` (transformers; the packaged SmolLM2 by default) and ``http`` (an
OpenAI-compatible server through :class:`mmbench.llm.OpenAIClient`: ``likelihood`` needs a
server that echoes prompt log-probabilities, ``/v1/completions`` with ``echo`` and ``logprobs``
as vLLM gives; ``verbalizer`` needs ``logprobs`` of the next token; ``listwise`` only generates).
Nothing is trained: ``mmbench baseline train zeroshot`` checks and records the settings.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field

from mmbench.baselines import BaselineSettings
from mmbench.baselines.data import Benchmark, catalogue_digest, instance_inputs, popularity_order
from mmbench.causal_lm import CausalLM
from mmbench.errors import MmbenchError
from mmbench.progress import progress_bar
from mmbench.schema import MAX_PREDICTIONS, mgphot_gene_list
from mmbench.tracks import normalize_name, track_text

Scorer = Literal["likelihood", "verbalizer", "listwise"]
SCORERS: tuple[str, ...] = get_args(Scorer)
LETTERS = "ABCDEFGHIJKLMNOPQRST"


class Settings(BaselineSettings):
    scorer: Scorer
    backend: Literal["local", "http"]
    model: str  # local: a folder or Hub name ("" = the packaged SmolLM2); http: the served name
    url: str
    cache: str  # a folder of cached http answers, or ""
    requests_per_second: Annotated[float, Field(ge=0)]  # 0: no limit
    retriever: str  # a trained baseline folder or a predictions file (next-track)
    shortlist: Annotated[int, Field(ge=1, le=MAX_PREDICTIONS)]
    history: Annotated[int, Field(ge=1, le=10_000)]
    completion: bool
    mgphot: bool
    group_size: Annotated[int, Field(ge=2, le=len(LETTERS))]
    bootstrap: Annotated[int, Field(ge=1, le=1_000)]
    max_new_tokens: Annotated[int, Field(ge=1, le=100_000)]
    batch_size: Annotated[int, Field(ge=1, le=100_000)]
    instances: Annotated[int, Field(ge=0)]  # rerank this many random instances (0: all)
    seed: int
    device: str


INSTRUCTION = "A music listener's plays, oldest first. Which track will they play next?"


# -- prompts ---------------------------------------------------------------------------------


def completion_words(ratio: float | None) -> str:
    """How much of a play was heard, in words (empty when unknown)."""
    if ratio is None or ratio != ratio:
        return ""
    if ratio < 0.3:
        return " (skipped early)"
    return " (played to the end)" if ratio >= 0.9 else " (played in part)"


class TrackTexts:
    """Each track's line: ``artist - title``, with its MGPHot description when asked for."""

    def __init__(self, data: Benchmark, mgphot: bool):
        tracks = data.tracks
        texts = tracks.select("track_id", track_text().alias("text"))
        self.names = dict(zip(texts["track_id"].to_list(), texts["text"].to_list(), strict=True))
        self.descriptions: dict[str, str] = {}
        if mgphot:
            from mmbench import layout

            if Path(data.source).is_dir() and "mgphot" not in layout.configs(Path(data.source)):
                raise MmbenchError(f"mgphot=true, but the dataset {data.source} has no mgphot config")
            genes = data.frame("mgphot", "catalog")
            poles = [str(g["1"]) for g in mgphot_gene_list()]
            values = np.asarray(genes["genes"].to_list(), dtype=np.float32)
            for track, row in zip(genes["track_id"].to_list(), values, strict=True):
                top = np.argsort(-row, kind="stable")[:3]
                self.descriptions[track] = "; ".join(poles[i] for i in top)

    def line(self, track: str) -> str:
        """The track's text as the model reads it."""
        text = self.names[track]
        return f"{text} [{self.descriptions[track]}]" if track in self.descriptions else text


def history_prompt(row: dict, texts: TrackTexts, config: Settings) -> str:
    """The instruction, the last ``history`` plays before the session, then the session so far."""
    plays = list(zip(row["history"], row["history_completion"], strict=True))
    session = list(zip(row["prefix"], row["prefix_completion"], strict=True))
    keep = max(config.history - len(session), 0)
    session = session[-config.history :]
    earlier = plays[-keep:] if keep else []

    def lines(items: list) -> str:
        return "".join(
            f"- {texts.line(t)}{completion_words(r) if config.completion else ''}\n" for t, r in items
        )

    text = INSTRUCTION + "\n"
    if earlier:
        text += "Earlier plays:\n" + lines(earlier)
    text += "This session so far:\n" + (lines(session) if session else "(nothing yet)\n")
    return text


# -- backends --------------------------------------------------------------------------------


class LocalModel(CausalLM):
    """A transformers causal LM on this machine (the packaged SmolLM2 when ``name`` is empty)."""

    def __init__(self, name: str, device: str):
        super().__init__(name, device, f"zero-shot model {name or 'SmolLM2 (packaged)'}")

    def continuation_ids(self, prompt_ids: list[int], prompt: str, continuation: str) -> list[int]:
        """The continuation's tokens as the tokenizer splits it after the prompt (encoded
        together, so that a tokenizer marking word starts, as SentencePiece does, sees it in
        context), or encoded alone when the joint encoding changes the prompt's own tokens."""
        joint = self.encode(prompt + continuation)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        return self.encode(continuation)

    def continuation_logprobs(self, prompt: str, continuations: list[str], batch_size: int) -> list[float]:
        """Mean log-probability per token of each continuation after ``prompt``."""
        prompt_ids = self.encode(prompt)
        tokens = [self.continuation_ids(prompt_ids, prompt, c) for c in continuations]
        scores = []
        for start, logits in self.continuation_logits(prompt_ids, tokens, batch_size):
            logp = self.torch.log_softmax(logits, -1)
            for b, x in enumerate(tokens[start : start + len(logits)]):
                total = sum(logp[b, j, x[j]] for j in range(len(x)))
                scores.append(float(total) / len(x))
        return scores

    def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
        """Log-probabilities of the next token being each of ``tokens`` (one token each)."""
        torch = self.torch
        ids = [self.encode(t) for t in tokens]
        if any(len(i) != 1 for i in ids):
            raise MmbenchError("the verbalizer's letters are not single tokens for this model's tokenizer")
        with torch.inference_mode():
            logits = self.model(
                torch.tensor([self.encode(prompt)], device=self.device), logits_to_keep=1
            ).logits[0, -1]
        logp = torch.log_softmax(logits.float(), -1)
        return [float(logp[i[0]]) for i in ids]


class HttpModel:
    """The same three operations through an OpenAI-compatible server."""

    def __init__(self, url: str, model: str, cache_folder: str, **client: Any):
        from mmbench.llm import AnswerCache, OpenAIClient

        cache = AnswerCache(Path(cache_folder)) if cache_folder else None
        self.client = OpenAIClient(url, model, cache=cache, **client)

    def continuation_logprobs(self, prompt: str, continuations: list[str], batch_size: int) -> list[float]:
        return [self._echoed(prompt, c) for c in continuations]

    def _echoed(self, prompt: str, continuation: str) -> float:
        # One generated token, not max_tokens=0: llama-cpp-python's server reads 0 as "up to
        # the context"; the generated token is past the candidate and not counted.
        body = {
            "prompt": prompt + continuation,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 0,
            "temperature": 0,
        }
        check = functools.partial(echoed_logprob, start=len(prompt), end=len(prompt) + len(continuation))
        return self.client.request("completions", body, check, "a candidate's log-likelihood")

    def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
        body = {"prompt": prompt, "max_tokens": 1, "logprobs": 20, "temperature": 0}
        check = functools.partial(next_token_logprobs, tokens=tokens)
        return self.client.request("completions", body, check, "the verbalizer's letters")

    def generate(self, messages: list[dict], max_new_tokens: int) -> str:
        body = {"messages": messages, "max_tokens": max_new_tokens, "temperature": 0}
        return self.client.request("chat/completions", body, chat_text, "a listwise ranking")


def echoed_logprob(answer: dict, start: int, end: int) -> float:
    """From a ``/v1/completions`` answer with ``echo`` and ``logprobs`` (the legacy OpenAI format
    of vLLM and llama.cpp: each token's ``text_offset`` and ``token_logprobs``): the mean
    log-probability of the tokens that start in the characters ``[start, end)`` (the
    candidate's text; generated tokens after it are not counted). ValueError when the answer has none."""
    try:
        logprobs = answer["choices"][0]["logprobs"]
        pairs = list(zip(logprobs["text_offset"], logprobs["token_logprobs"], strict=True))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"no prompt log-probabilities in the answer ({exc!r}); the server must echo them"
        ) from None
    mine = [v for offset, v in pairs if start <= offset < end and v is not None]
    if not mine:
        raise ValueError("the echoed log-probabilities do not cover the candidate")
    return sum(mine) / len(mine)


def next_token_logprobs(answer: dict, tokens: list[str]) -> list[float]:
    """From a ``/v1/completions`` answer with ``logprobs``: the log-probability of each of
    ``tokens`` as the first generated token; a token outside the returned top ones gets one less
    than the least of them. ValueError when the answer has none."""
    try:
        top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        floor = min(top.values()) - 1.0
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"no next-token log-probabilities in the answer ({exc!r})") from None
    return [float(top.get(t, floor)) for t in tokens]


def chat_text(answer: dict) -> str:
    """The text of a chat completion. ValueError when the answer is not one."""
    try:
        return str(answer["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a chat completion ({exc!r})") from None


def make_model(config: Settings) -> LocalModel | HttpModel:
    """The configured backend."""
    if config.backend == "local":
        return LocalModel(config.model, config.device)
    return HttpModel(*_http_settings(config), config.cache, requests_per_second=config.requests_per_second)


# -- scorers ---------------------------------------------------------------------------------


def score_likelihood(
    model: Any, prompt: str, lines: list[str], config: Settings, rng: np.random.Generator
) -> np.ndarray:
    """Length-normalised log-likelihood of each candidate line after the prompt."""
    prompt = prompt + "Next track:\n"
    return np.asarray(model.continuation_logprobs(prompt, [f"{line}\n" for line in lines], config.batch_size))


def verbalizer_prompt(prompt: str, lines: list[str]) -> str:
    options = "".join(f"{LETTERS[i]}. {line}\n" for i, line in enumerate(lines))
    return f"{prompt}Candidates:\n{options}Answer with the letter of the next track.\nAnswer:"


def score_verbalizer(
    model: Any, prompt: str, lines: list[str], config: Settings, rng: np.random.Generator
) -> np.ndarray:
    """Mean over ``bootstrap`` shuffled orders of each candidate's letter log-probability, groups
    of at most ``group_size`` candidates (the scores of different groups are on one scale only
    roughly: each group's letters compete among themselves)."""
    scores = np.zeros(len(lines))
    size = min(config.group_size, len(LETTERS))
    for start in range(0, len(lines), size):
        group = np.arange(start, min(start + size, len(lines)))
        for b in range(config.bootstrap):
            order = group if b == 0 else rng.permutation(group)
            letters = [f" {LETTERS[i]}" for i in range(len(order))]
            logp = model.next_token_logprobs(verbalizer_prompt(prompt, [lines[i] for i in order]), letters)
            scores[order] += np.asarray(logp) / config.bootstrap
    return scores


def parse_ranking(text: str, lines: list[str]) -> list[int]:
    """The candidates (indices into ``lines``) in the order the answer names them, each once.

    Each answer line is read after its list marker (``3.``, ``3)``, ``-``). Where it holds
    candidates' texts, whole words only (case, spacing and Unicode forms ignored; a trailing
    ``[...]``, the MGPHot genes, not needed; a text inside a longer candidate's not counted),
    those candidates in the order written, candidates with the same text in turn. A line made
    only of numbers and separators, after at most a two-word label (``Ranking: 3, 1``), names
    the candidates of those numbers (1..n). Other lines (prose, tracks the model made up) name
    none. So ``3, 1, 7`` and a list that writes the tracks out (``1. Artist - Title``) both
    parse, and the list's own numbering is never taken for candidates: small models answer with
    a numbered list of titles.
    """
    same_text: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        same_text.setdefault(normalize_name(re.sub(r"\s*\[[^\]]*\]\s*$", "", line)), []).append(i)
    patterns = [
        (re.compile(rf"(?<!\w){re.escape(t)}(?!\w)"), indices)
        for t, indices in sorted(same_text.items(), key=lambda x: -len(x[0]))
        if t
    ]
    seen: list[int] = []
    for answer_line in text.splitlines():
        rest = normalize_name(re.sub(r"^\s*(?:\d+[.):]|[-*•])(?:\s+|$)", "", answer_line))
        found: list[tuple[int, int]] = []  # (where in the line, candidate)
        spans: list[tuple[int, int]] = []
        for pattern, indices in patterns:  # longest first: a text inside a longer one is not it
            for match in pattern.finditer(rest):
                if any(match.start() < b and a < match.end() for a, b in spans):
                    continue
                spans.append(match.span())
                free = [i for i in indices if i not in seen and all(i != j for _, j in found)]
                if free:
                    found.append((match.start(), free[0]))
        if found:
            named = [i for _, i in sorted(found)]
        elif numbers := re.fullmatch(r"(?:[^\W\d]+ ?){0,2}:?\s*([\d\s,;.#()\[\]>|/-]+)", rest):
            named = [int(k) - 1 for k in re.findall(r"\d+", numbers[1]) if 1 <= int(k) <= len(lines)]
        else:
            named = []
        seen += [i for i in dict.fromkeys(named) if i not in seen]
    return seen


def score_listwise(
    model: Any, prompt: str, lines: list[str], config: Settings, rng: np.random.Generator
) -> np.ndarray:
    """Scores from the model's written ranking: the first named gets the highest; candidates it
    leaves out score below all named ones, keeping their given order."""
    options = "".join(f"{i + 1}. {line}\n" for i, line in enumerate(lines))
    messages = [{
        "role": "user",
        "content": f"{prompt}Candidates:\n{options}Rank all {len(lines)} candidates from most to least likely "
        "to be played next. Answer with their numbers only, separated by commas.",
    }]  # fmt: skip
    ranking = parse_ranking(model.generate(messages, config.max_new_tokens), lines)
    scores = -np.arange(len(lines), dtype=float) - len(lines)  # unnamed: given order, below all named
    for place, i in enumerate(ranking):
        scores[i] = -place
    return scores


SCORER_FUNCTIONS = {
    "likelihood": score_likelihood,
    "verbalizer": score_verbalizer,
    "listwise": score_listwise,
}


# -- the baseline ----------------------------------------------------------------------------


def check(config: Settings, data: Benchmark) -> dict:
    """Check the settings against the dataset (nothing is trained); what to record."""
    TrackTexts(data, config.mgphot)  # a missing mgphot config fails here
    if config.retriever:
        _retriever_source(config.retriever, data)
    if config.backend == "http":
        from mmbench.llm import OpenAIClient

        OpenAIClient(*_http_settings(config)).check_reachable()
    return {}


def _http_settings(config: Settings) -> tuple[str, str]:
    if not config.url or not config.model:
        raise MmbenchError("backend=http needs --set url=http://HOST:PORT/v1 and --set model=NAME")
    return config.url, config.model


def _retriever_source(retriever: str, data: Benchmark) -> Path:
    """A retriever folder (checked to come from this dataset) or a predictions file."""
    path = Path(retriever)
    if path.is_dir():
        record_path = path / "config.json"
        if not record_path.is_file():
            raise MmbenchError(
                f"retriever {path}: no config.json; expected a `mmbench baseline train` folder"
            )
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("catalogue_digest") != catalogue_digest(data.track_ids):
            raise MmbenchError(
                f"retriever {path}: trained on a dataset with other track ids than {data.source}"
            )
        return path
    if path.is_file():
        return path
    raise MmbenchError(f"retriever {path}: no such folder or predictions file")


def retriever_rankings(
    config: Settings,
    data: Benchmark,
    task: str,
    split: str,
    ids: list[str],
    folder: Path | None,
    predict: Callable[..., int],
) -> dict[str, list[str]]:
    """Each instance's retriever ranking (a folder's predictions are made once by ``predict``,
    the runner's, and kept in the zero-shot folder)."""
    source = _retriever_source(config.retriever, data)
    if source.is_dir():
        from mmbench.digests import text_digest

        # Named by the retriever's folder and record: another or a retrained retriever is asked anew.
        identity = text_digest(str(source.resolve()) + (source / "config.json").read_text(encoding="utf-8"))
        rule = "" if data.excludes_prefix else "-keep-prefix"  # the --keep-prefix ablation reaches it
        kept = (folder or Path(".")) / f"retriever-{task}-{split}-{identity}{rule}.jsonl"
        if not kept.exists():
            predict(source, task, split, kept, source=data.source, progress=False, keep_prefix=bool(rule))
        source = kept
    rankings = {}
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            rankings[row["instance_id"]] = list(row["predictions"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise MmbenchError(
                f"{source}:{number}: expected a JSON object with instance_id and predictions"
            ) from None
    known = set(data.track_ids)
    for instance, ranking in rankings.items():
        if len(set(ranking)) != len(ranking) or not set(ranking) <= known:
            raise MmbenchError(
                f"retriever {source}: the ranking of {instance} repeats a track or names one outside the catalogue"
            )
    missing = [i for i in ids if i not in rankings]
    if missing:
        raise MmbenchError(
            f"retriever {source}: no ranking for {len(missing)} of the {task} {split} instances (first: {missing[0]})"
        )
    return rankings


def rank_instances(
    data: Benchmark,
    task: str,
    split: str,
    config: Settings,
    folder: Path | None,
    predict: Callable[..., int],
    progress: bool = True,
) -> tuple[list[str], list[list[str]]]:
    """Every instance's ranking: the scored candidates first, then the rest of the retriever's
    order (next-track) or of the candidates (paper-sampled). ``predict`` is the runner's, which
    writes a retriever folder's predictions."""
    rows = instance_inputs(data, task, split)
    ids = [r["instance_id"] for r in rows]
    if task == "next-track":
        if not config.retriever:
            raise MmbenchError("next-track needs a retriever: --set retriever=FOLDER or predictions file")
        base = retriever_rankings(config, data, task, split, ids, folder, predict)
    else:
        pop = {t: i for i, t in enumerate(popularity_order(data))}
        base = {
            r["instance_id"]: sorted(r["candidates"], key=lambda t: (pop.get(t, len(pop)), t)) for r in rows
        }
    chosen = set(ids)
    if config.instances:
        picked = np.random.default_rng(config.seed).choice(
            len(ids), min(config.instances, len(ids)), replace=False
        )
        chosen = {ids[i] for i in picked}
    texts = TrackTexts(data, config.mgphot)
    model = make_model(config)
    scorer = SCORER_FUNCTIONS[config.scorer]
    popularity = popularity_order(data)
    rankings = []
    for row in progress_bar(rows, desc=f"zeroshot {config.scorer} {task} {split}", disable=not progress):
        order = base[row["instance_id"]]
        if data.excludes_prefix and row["prefix"]:  # a retriever's file may rank them: never shortlisted
            prefix = set(row["prefix"])
            order = [t for t in order if t not in prefix]
            if len(order) < MAX_PREDICTIONS:  # filled from popularity, as every ranking is
                seen = prefix | set(order)
                order += list(
                    itertools.islice((t for t in popularity if t not in seen), MAX_PREDICTIONS - len(order))
                )
        if row["instance_id"] not in chosen:
            rankings.append(order[:MAX_PREDICTIONS])
            continue
        shortlist = order[: config.shortlist] if task == "next-track" else order
        if task == "paper-sampled" and config.scorer == "listwise":
            shortlist = order[: config.shortlist]
        rng = np.random.default_rng([config.seed, len(rankings)])
        scores = scorer(
            model, history_prompt(row, texts, config), [texts.line(t) for t in shortlist], config, rng
        )
        best = [shortlist[i] for i in np.argsort(-scores, kind="stable")]
        rankings.append((best + [t for t in order if t not in set(best)])[:MAX_PREDICTIONS])
    return ids, rankings


def position_bias(model: Any, prompt: str, lines: list[str], config: Settings) -> float:
    """Kendall's tau between the scores of the candidates given in one order and in the reverse
    order (1: the order does not matter)."""
    from scipy.stats import kendalltau

    scorer = SCORER_FUNCTIONS[config.scorer]
    rng = np.random.default_rng(config.seed)
    forward = scorer(model, prompt, lines, config, rng)
    backward = scorer(model, prompt, lines[::-1], config, rng)[::-1]
    return float(kendalltau(forward, backward).statistic)
