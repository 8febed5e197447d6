"""Zero-shot LLM rankers: a language model never trained on the data reads the listening history
as text (``artist - title`` lines, built from the ``tracks`` config) and ranks candidate tracks.

Candidates: on ``paper-sampled``, the instance's own; on ``next-track``, the first ``shortlist``
tracks of a retriever (a trained baseline folder or a predictions file), and the final ranking is
the reranked shortlist followed by the retriever's remaining order (100 distinct ids).

What the model sees never carries the retriever's order: each pass shows the candidates in a
seeded random order (``order = "given"``, the retriever's or popularity's order, is an ablation),
``passes`` passes are aggregated by rank (Borda count, as LLMRank's bootstrapping, Hou et al.,
ECIR 2024), and ties (candidates an answer does not name) are broken by training popularity, then
track id, a rule that does not depend on the order shown.

Scorers:

- ``likelihood``: each candidate's log-likelihood after the prompt, per token (``length_norm =
  "mean"``) or summed, with or without the line's newline; ``calibrate`` subtracts the same
  candidate's log-likelihood after the prompt with no history (PMI). The prompt runs once; its
  key/value cache is repeated over a batch of candidates. It scores each candidate apart, so its
  order cannot matter and one pass is made.
- ``verbalizer``: the candidates listed with letters, one forward pass, the next-token
  log-probabilities of the letters (in the spirit of LlamaRec, Yue et al. 2023); ``calibrate``
  subtracts the letters' log-probabilities under a content-free prompt (every text "N/A";
  Zhao et al., "Calibrate before use", ICML 2021).
- ``listwise``: the model writes a ranking of the candidates shown as ``[1]`` .. ``[n]`` (as
  RankGPT, Sun et al., EMNLP 2023), parsed by :func:`parse_ranking`.

The verbalizer and listwise see at most ``window`` candidates per prompt; more are ranked by a
sliding window from the back of the shown order to its front, ``step`` at a time (RankGPT's window
of 20 and step of 10): the model only ever compares candidates that share a prompt, and the best
``window - step`` of a consistent scorer reach the top (below them, candidates that never shared
a prompt stay where the windows left them).

Backends: ``local`` (transformers; the packaged SmolLM2 by default, or a preset of the paper's
backbones) and ``http`` (an OpenAI-compatible server through :class:`mmbench.llm.OpenAIClient`;
the likelihood's per-candidate requests go ``concurrency`` at a time): ``likelihood`` needs a server that echoes prompt
log-probabilities, ``/v1/completions`` with ``echo`` and ``logprobs`` as vLLM gives; with a local
``tokenizer`` of the served model, prompts go as token ids and the candidate's tokens are known
exactly, else they are found by the answer's tokens, which must spell the candidate;
``verbalizer`` needs ``logprobs`` of the next token, and with a ``tokenizer`` restricts the answer
to the letters by ``logit_bias`` so that each letter gets a real value; ``listwise`` only
generates). Nothing is trained: ``mmbench baseline train zeroshot`` checks and records the
settings.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from mmbench.baselines import BaselineSettings
from mmbench.baselines.data import Benchmark, catalogue_digest, instance_inputs, popularity_order
from mmbench.causal_lm import PRESETS, CausalLM
from mmbench.errors import MmbenchError
from mmbench.files import write_atomic
from mmbench.progress import progress_bar
from mmbench.schema import MAX_PREDICTIONS, mgphot_gene_list
from mmbench.tracks import normalize_name, track_text

log = logging.getLogger(__name__)

Scorer = Literal["likelihood", "verbalizer", "listwise"]
LETTERS = "ABCDEFGHIJKLMNOPQRST"


class Settings(BaselineSettings):
    scorer: Scorer
    backend: Literal["local", "http"]
    model: str  # local: a preset, folder or Hub name ("" = the packaged SmolLM2); http: the served name
    url: str
    tokenizer: str  # http: a local tokenizer of the served model ("" = none)
    cache: str  # a folder of cached http answers, or ""
    requests_per_second: Annotated[float, Field(ge=0)]  # 0: no limit
    concurrency: Annotated[int, Field(ge=1, le=256)]  # http requests in flight
    retriever: str  # a trained baseline folder or a predictions file (next-track)
    shortlist: Annotated[int, Field(ge=1, le=MAX_PREDICTIONS)]
    history: Annotated[int, Field(ge=1, le=10_000)]
    completion: bool
    mgphot: bool
    order: Literal["shuffled", "given"]
    passes: Annotated[int, Field(ge=1, le=1_000)]
    window: Annotated[int, Field(ge=2, le=len(LETTERS))]
    step: Annotated[int, Field(ge=1, le=len(LETTERS))]
    calibrate: bool
    length_norm: Literal["mean", "sum"]
    newline: bool
    max_new_tokens: Annotated[int, Field(ge=1, le=100_000)]
    batch_size: Annotated[int, Field(ge=1, le=100_000)]
    instances: Annotated[int, Field(ge=0)]  # rerank this many random instances (0: all)
    seed: int
    device: str

    @model_validator(mode="after")
    def _step_within_window(self) -> Settings:
        if self.step >= self.window:
            raise ValueError(f"step ({self.step}) must be smaller than window ({self.window})")
        return self


INSTRUCTION = "A music listener's plays, oldest first. Which track will they play next?"
# The prompt with no history (the likelihood's PMI) and with no content at all (the verbalizer's
# calibration): every text "N/A".
NO_HISTORY = INSTRUCTION + "\nThis session so far:\n(nothing yet)\n"
CONTENT_FREE = INSTRUCTION + "\nThis session so far:\n- N/A\n"


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
    """A transformers causal LM on this machine (the packaged SmolLM2 when ``name`` is empty; a
    preset name of :data:`mmbench.causal_lm.PRESETS` is its Hub model). A tokenizer that starts
    every text with a BOS token (Llama's) gets it before each prompt, as the model was trained."""

    def __init__(self, name: str, device: str):
        super().__init__(PRESETS.get(name, name), device, f"zero-shot model {name or 'SmolLM2 (packaged)'}")
        self.prefix: list[int] = self.tokenizer("")["input_ids"]

    def continuation_ids(self, prompt_ids: list[int], prompt: str, continuation: str) -> list[int]:
        """The continuation's tokens as the tokenizer splits it after the prompt (encoded
        together, so that a tokenizer marking word starts, as SentencePiece does, sees it in
        context), or encoded alone when the joint encoding changes the prompt's own tokens."""
        joint = self.encode(prompt + continuation)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        return self.encode(continuation)

    def continuation_logprobs(
        self, prompt: str, continuations: list[str], batch_size: int
    ) -> list[tuple[float, int]]:
        """Each continuation's summed log-probability after ``prompt`` and its number of tokens."""
        plain = self.encode(prompt)
        tokens = [self.continuation_ids(plain, prompt, c) for c in continuations]
        scores = []
        for start, logits in self.continuation_logits(self.prefix + plain, tokens, batch_size):
            logp = self.torch.log_softmax(logits, -1)
            for b, x in enumerate(tokens[start : start + len(logits)]):
                total = sum(logp[b, j, x[j]] for j in range(len(x)))
                scores.append((float(total), len(x)))
        return scores

    def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
        """Log-probabilities of the next token being each of ``tokens`` (one token each)."""
        torch = self.torch
        plain = self.encode(prompt)
        # Each token as the tokenizer writes it after the prompt (SentencePiece joins the space).
        ids = [self.continuation_ids(plain, prompt, t) for t in tokens]
        if any(len(i) != 1 for i in ids):
            raise MmbenchError("the verbalizer's letters are not single tokens for this model's tokenizer")
        with torch.inference_mode():
            logits = self.model(
                torch.tensor([self.prefix + plain], device=self.device), logits_to_keep=1
            ).logits[0, -1]
        logp = torch.log_softmax(logits.float(), -1)
        return [float(logp[i[0]]) for i in ids]


class HttpModel:
    """The same three operations through an OpenAI-compatible server (a prompt's candidates'
    likelihood requests ``concurrency`` at a time). With ``tokenizer`` (a local tokenizer of the served model, as a folder or Hub name),
    prompts go as token ids, BOS included where the tokenizer adds one, and the verbalizer's
    letters are favoured by ``logit_bias`` so that every letter is among the returned ones."""

    def __init__(
        self,
        url: str,
        model: str,
        cache_folder: str,
        tokenizer: str = "",
        concurrency: int = 1,
        **client: Any,
    ):
        from mmbench.llm import AnswerCache, OpenAIClient

        cache = AnswerCache(Path(cache_folder)) if cache_folder else None
        self.client = OpenAIClient(url, model, cache=cache, **client)
        self.concurrency = concurrency
        self.tokenizer = None
        if tokenizer:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
            except (OSError, ValueError) as exc:
                raise MmbenchError(
                    f"tokenizer {tokenizer}: cannot load it: {str(exc).splitlines()[0]}"
                ) from None
        self.missing_letters = 0  # letters that were not among the returned log-probabilities

    def continuation_logprobs(
        self, prompt: str, continuations: list[str], batch_size: int
    ) -> list[tuple[float, int]]:
        # One generated token, not max_tokens=0: llama-cpp-python's server reads 0 as "up to
        # the context"; the generated token is past the candidate and not counted.
        base = {"max_tokens": 1, "echo": True, "logprobs": 0, "temperature": 0}
        requests = []
        prompt_ids = self.tokenizer(prompt)["input_ids"] if self.tokenizer is not None else []
        for continuation in continuations:
            if self.tokenizer is not None:
                ids = self.tokenizer(prompt + continuation)["input_ids"]
                if ids[: len(prompt_ids)] != prompt_ids or len(ids) == len(prompt_ids):
                    raise MmbenchError(
                        f"the tokenizer splits the prompt differently when {continuation!r} follows it; "
                        "the candidate's tokens cannot be told apart"
                    )
                check = functools.partial(echoed_token_logprobs, start=len(prompt_ids), end=len(ids))
                requests.append(({**base, "prompt": ids}, check))
            else:
                check = functools.partial(echoed_logprob, prompt=prompt, continuation=continuation)
                requests.append(({**base, "prompt": prompt + continuation}, check))
        return self.client.request_many(
            "completions", requests, "a candidate's log-likelihood", self.concurrency
        )

    def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": 1, "logprobs": 20, "temperature": 0}
        if self.tokenizer is not None:
            ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in tokens]
            if any(len(i) != 1 for i in ids):
                raise MmbenchError("the verbalizer's letters are not single tokens for this tokenizer")
            body["logit_bias"] = {str(i[0]): 100 for i in ids}
        check = functools.partial(next_token_logprobs, tokens=tokens)
        values, missing = self.client.request("completions", body, check, "the verbalizer's letters")
        self.missing_letters += missing
        return values

    def generate(self, messages: list[dict], max_new_tokens: int) -> str:
        body = {"messages": messages, "max_tokens": max_new_tokens, "temperature": 0}
        return self.client.request("chat/completions", body, chat_text, "a listwise ranking")


def _echoed(answer: dict) -> tuple[list[str], list[float | None]]:
    try:
        logprobs = answer["choices"][0]["logprobs"]
        tokens, values = list(logprobs["tokens"]), list(logprobs["token_logprobs"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"no prompt log-probabilities in the answer ({exc!r}); the server must echo them"
        ) from None
    if len(tokens) != len(values):
        raise ValueError("the answer's tokens and log-probabilities differ in number")
    return tokens, values


def echoed_logprob(answer: dict, prompt: str, continuation: str) -> tuple[float, int]:
    """From a ``/v1/completions`` answer with ``echo`` and ``logprobs`` (the legacy OpenAI format
    of vLLM and llama.cpp): the summed log-probability of the continuation's tokens and their
    number. The tokens are found by their texts, not by the answer's ``text_offset``, which a
    server may count from a BOS token's text: the echoed tokens must spell (after any leading
    special token) ``prompt + continuation``, and the continuation must start and end on token
    boundaries; else ValueError, so that no candidate is ever scored by another's tokens."""
    tokens, values = _echoed(answer)
    spelled = "".join(tokens)
    lead = spelled.find(prompt + continuation)
    # Asking again cannot change either: an error that names the way out, not a retry.
    if lead < 0:
        raise MmbenchError(
            f"the echoed tokens do not spell the prompt and the candidate {continuation.strip()!r} (a server "
            "may write a character split across tokens as a placeholder); set tokenizer= to send token ids"
        )
    start, end = lead + len(prompt), lead + len(prompt) + len(continuation)
    edges = np.cumsum([0] + [len(t) for t in tokens])
    if start not in edges or end not in edges:
        raise MmbenchError(
            f"a token spans the prompt and the candidate {continuation.strip()!r}: its log-probability "
            "cannot be split; set tokenizer= to send token ids"
        )
    first, last = int(np.searchsorted(edges, start)), int(np.searchsorted(edges, end))
    mine = values[first:last]
    if not mine or any(v is None for v in mine):
        raise ValueError("the echoed log-probabilities do not cover the candidate")
    return float(sum(mine)), len(mine)  # type: ignore[arg-type]


def echoed_token_logprobs(answer: dict, start: int, end: int) -> tuple[float, int]:
    """The summed log-probability of the prompt tokens ``[start, end)`` (a prompt sent as token
    ids, so the answer's tokens are the ones sent) and their number; ValueError when missing."""
    _, values = _echoed(answer)
    if len(values) not in (end, end + 1):  # the prompt sent, and the one token generated
        raise MmbenchError(
            f"the server echoed {len(values)} tokens for a prompt of {end}: it does not read the token ids as sent"
        )
    mine = values[start:end]
    if len(mine) != end - start or any(v is None for v in mine):
        raise ValueError("the echoed log-probabilities do not cover the candidate")
    return float(sum(mine)), len(mine)  # type: ignore[arg-type]


def next_token_logprobs(answer: dict, tokens: list[str]) -> tuple[list[float], int]:
    """From a ``/v1/completions`` answer with ``logprobs``: the log-probability of each of
    ``tokens`` as the first generated token, and how many were not among the returned top ones
    (each of those gets one less than the least returned: a tie, counted so it can be reported).
    ValueError when the answer has none."""
    try:
        top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        floor = min(top.values()) - 1.0
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"no next-token log-probabilities in the answer ({exc!r})") from None
    return [float(top.get(t, floor)) for t in tokens], sum(t not in top for t in tokens)


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
    return HttpModel(
        *_http_settings(config), config.cache, tokenizer=config.tokenizer, concurrency=config.concurrency,
        requests_per_second=config.requests_per_second,
    )  # fmt: skip


# -- scorers ---------------------------------------------------------------------------------


def verbalizer_prompt(prompt: str, lines: list[str]) -> str:
    options = "".join(f"{LETTERS[i]}. {line}\n" for i, line in enumerate(lines))
    return f"{prompt}Candidates:\n{options}Answer with the letter of the next track.\nAnswer:"


def listwise_messages(prompt: str, lines: list[str]) -> list[dict]:
    options = "".join(f"[{i + 1}] {line}\n" for i, line in enumerate(lines))
    return [{
        "role": "user",
        "content": f"{prompt}Candidates:\n{options}Rank all {len(lines)} candidates from most to least likely "
        "to be played next. Answer only with their identifiers, most likely first, in the form [2] > [1] > [3].",
    }]  # fmt: skip


# Typographic forms a model writes for the prompt's plain characters.
_PLAIN = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'",
                        "\u201c": '"', "\u201d": '"'})  # fmt: skip


def _answer_form(text: str) -> str:
    return normalize_name(text.translate(_PLAIN))


def parse_ranking(text: str, lines: list[str]) -> tuple[list[int], int]:
    """The candidates (indices into ``lines``) in the order the answer names them, each once, and
    the number of answer lines that look like a track (``x - y`` or ``title by artist``) but name
    none of them (made-up tracks).

    An answer in the asked form (``[3] > [1] > ...``) is read by its bracketed identifiers (1..n;
    others are ignored). Otherwise each answer line is read after its list marker (``3.``,
    ``3)``, ``-``): where it holds candidates' texts, whole words only (case, spacing, Unicode
    forms, en dashes and curly quotes ignored; ``title by artist`` read as ``artist - title``; a
    trailing ``[...]``, the MGPHot genes, not needed; a text inside a longer candidate's not
    counted), those candidates in the order written, candidates with the same text in turn. A
    line made only of numbers and separators, after at most a two-word label ending in a colon
    (``Ranking: 3, 1``), names the candidates of those numbers (1..n). Other lines name none, so a
    list's own numbering and a name with a number in it (``1. Maroon 5``) are never read as
    candidate numbers.
    """
    bracketed = [int(k) - 1 for k in re.findall(r"\[(\d+)\]", text)]
    if bracketed:
        return [i for i in dict.fromkeys(bracketed) if 0 <= i < len(lines)], 0
    same_text: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        plain = _answer_form(re.sub(r"\s*\[[^\]]*\]\s*$", "", line))
        same_text.setdefault(plain, []).append(i)
        artist, dash, title = plain.partition(" - ")
        if dash:
            same_text.setdefault(f"{title} by {artist}", []).append(i)
    patterns = [
        (re.compile(rf"(?<!\w){re.escape(t)}(?!\w)"), indices)
        for t, indices in sorted(same_text.items(), key=lambda x: -len(x[0]))
        if t
    ]
    seen: list[int] = []
    made_up = 0
    for answer_line in text.splitlines():
        rest = _answer_form(re.sub(r"^\s*(?:\d+[.):]|[-*•])(?:\s+|$)", "", answer_line))
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
        elif numbers := re.fullmatch(r"(?:(?:[^\W\d]+ ?){1,2}:\s*)?([\d\s,;.#()>|/-]+)", rest):
            named = [int(k) - 1 for k in re.findall(r"\d+", numbers[1]) if 1 <= int(k) <= len(lines)]
        else:
            named = []
            made_up += bool(re.search(r"\w - \w|\w by \w", rest))
        seen += [i for i in dict.fromkeys(named) if i not in seen]
    return seen, made_up


class ZeroShotScorer:
    """One model's scorer with the run's settings: the passes over shuffled orders, the sliding
    window, the calibrations (cached: a content-free prompt per number of letters, a track's
    likelihood with no history), and counts of what the answers did (:attr:`stats`)."""

    def __init__(self, model: Any, config: Settings):
        self.model, self.config = model, config
        self._no_history: dict[str, tuple[float, int]] = {}
        self._letter_prior: dict[int, np.ndarray] = {}
        self.stats = {"prompts": 0, "candidates_shown": 0, "candidates_named": 0, "answers_naming_none": 0,
                      "made_up_lines": 0}  # fmt: skip

    def likelihood(self, prompt: str, lines: list[str]) -> np.ndarray:
        """Each candidate's log-likelihood after the prompt (per token or summed; minus its
        likelihood with no history when calibrated)."""
        config, model = self.config, self.model
        texts = [f"{line}\n" if config.newline else line for line in lines]
        scored = model.continuation_logprobs(prompt + "Next track:\n", texts, config.batch_size)
        totals = np.asarray([s for s, _ in scored])
        counts = np.asarray([n for _, n in scored], dtype=float)
        if config.calibrate:
            todo = [t for t in dict.fromkeys(texts) if t not in self._no_history]
            if todo:
                found = model.continuation_logprobs(NO_HISTORY + "Next track:\n", todo, config.batch_size)
                self._no_history.update(zip(todo, found, strict=True))
            totals = totals - np.asarray([self._no_history[t][0] for t in texts])
        self.stats["prompts"] += 1
        return totals / counts if config.length_norm == "mean" else totals

    def verbalizer(self, prompt: str, lines: list[str]) -> np.ndarray:
        """The letters' next-token log-probabilities for the candidates shown in this order
        (minus the content-free prompt's when calibrated)."""
        letters = [f" {LETTERS[i]}" for i in range(len(lines))]
        scores = np.asarray(self.model.next_token_logprobs(verbalizer_prompt(prompt, lines), letters))
        if self.config.calibrate:
            if len(lines) not in self._letter_prior:
                free = verbalizer_prompt(CONTENT_FREE, ["N/A"] * len(lines))
                self._letter_prior[len(lines)] = np.asarray(self.model.next_token_logprobs(free, letters))
            scores = scores - self._letter_prior[len(lines)]
        self.stats["prompts"] += 1
        return scores

    def listwise(self, prompt: str, lines: list[str]) -> np.ndarray:
        """Scores from the model's written ranking of the candidates shown in this order: the
        first named highest; the ones it does not name all tie below every named one."""
        named, made_up = parse_ranking(
            self.model.generate(listwise_messages(prompt, lines), self.config.max_new_tokens), lines
        )
        scores = np.full(len(lines), -float(len(lines)))
        scores[named] = -np.arange(len(named), dtype=float)
        self.stats["prompts"] += 1
        self.stats["candidates_shown"] += len(lines)
        self.stats["candidates_named"] += len(named)
        self.stats["answers_naming_none"] += not named
        self.stats["made_up_lines"] += made_up
        return scores

    def one_pass(self, prompt: str, lines: list[str], order: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
        """Scores (higher is better, ties allowed) of the candidates shown in ``order``; more
        than ``window`` go through the sliding window, whose result is their final order."""
        if self.config.scorer == "likelihood":
            return self.likelihood(prompt, lines)
        score = self.verbalizer if self.config.scorer == "verbalizer" else self.listwise
        window, step = self.config.window, self.config.step
        current = [int(i) for i in order]
        start = max(len(current) - window, 0)
        while True:
            shown = current[start : start + window]
            values = score(prompt, [lines[i] for i in shown])
            if len(current) <= window:
                scores = np.empty(len(lines))
                scores[shown] = values
                return scores
            ranked = sorted(range(len(shown)), key=lambda j: (-values[j], tiebreak[shown[j]]))
            current[start : start + window] = [shown[j] for j in ranked]
            if start == 0:
                break
            start = max(start - step, 0)
        scores = np.empty(len(lines))
        scores[current] = -np.arange(len(current), dtype=float)
        return scores

    def rank(
        self, prompt: str, lines: list[str], rng: np.random.Generator, tiebreak: np.ndarray
    ) -> list[int]:
        """The candidates best first: the passes' ranks summed (Borda; tied candidates share
        their average rank), ties broken by ``tiebreak`` (lower first)."""
        from scipy.stats import rankdata

        n = len(lines)
        if self.config.order == "given":
            orders = [np.arange(n)]
        else:
            passes = 1 if self.config.scorer == "likelihood" else self.config.passes
            orders = [rng.permutation(n) for _ in range(passes)]
        points = np.zeros(n)
        for order in orders:
            points += rankdata(self.one_pass(prompt, lines, order, tiebreak))
        return sorted(range(n), key=lambda i: (-points[i], tiebreak[i]))


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
    writes a retriever folder's predictions. What the answers did and which instances were
    reranked go to ``zeroshot-TASK-SPLIT.json`` in ``folder``."""
    rows = instance_inputs(data, task, split)
    ids = [r["instance_id"] for r in rows]
    popularity = popularity_order(data)
    pop = {t: i for i, t in enumerate(popularity)}
    if task == "next-track":
        if not config.retriever:
            raise MmbenchError("next-track needs a retriever: --set retriever=FOLDER or predictions file")
        base = retriever_rankings(config, data, task, split, ids, folder, predict)
    else:
        base = {
            r["instance_id"]: sorted(r["candidates"], key=lambda t: (pop.get(t, len(pop)), t)) for r in rows
        }
    chosen = set(ids)
    if config.instances and config.instances < len(ids):
        picked = np.random.default_rng(config.seed).choice(len(ids), config.instances, replace=False)
        chosen = {ids[i] for i in picked}
        log.warning(
            f"zeroshot: {len(chosen)} of {len(ids)} {task} {split} instances reranked; the other "
            f"{len(ids) - len(chosen)} keep the {'retriever' if task == 'next-track' else 'popularity'} order "
            "(report the reranked ones: zeroshot-*.json lists them)"
        )
    texts = TrackTexts(data, config.mgphot)
    scorer = ZeroShotScorer(make_model(config), config)
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
        rng = np.random.default_rng([config.seed, len(rankings)])
        tiebreak = np.asarray([pop.get(t, len(pop)) for t in shortlist])
        best = scorer.rank(
            history_prompt(row, texts, config), [texts.line(t) for t in shortlist], rng, tiebreak
        )
        ranked = [shortlist[i] for i in best]
        rankings.append((ranked + [t for t in order if t not in set(ranked)])[:MAX_PREDICTIONS])
    if folder is not None:
        stats = {**scorer.stats, "letters_without_value": getattr(scorer.model, "missing_letters", 0)}
        record = {"task": task, "split": split, "reranked": sorted(chosen), **stats}
        write_atomic(folder / f"zeroshot-{task}-{split}.json", json.dumps(record, indent=1) + "\n")
    return ids, rankings


def position_bias(model: Any, prompt: str, lines: list[str], config: Settings) -> float:
    """Kendall's tau between the scores of the candidates shown in one order and in the reverse
    order, one pass each: 1 when the place a candidate is shown at does not move its score (the
    likelihood's, which scores each candidate apart), lower the more the place matters."""
    from scipy.stats import kendalltau

    scorer = ZeroShotScorer(model, config)
    n = len(lines)
    forward = scorer.one_pass(prompt, lines, np.arange(n), np.arange(n))
    backward = scorer.one_pass(prompt, lines, np.arange(n)[::-1], np.arange(n))
    return float(kendalltau(forward, backward).statistic)
