"""One way to load a pretrained language model from a name (the packaged SmolLM2 when the name
is empty, else a local folder or Hub name) and to score continuations of one prompt: used by the
MGPHot annotator (the next token after each gene question), the zero-shot rankers (each
candidate's tokens) and, for loading, the e4srec backbone.

A prompt runs once; its key/value cache is repeated over each batch of continuations, which are
right-padded, so that padding comes after everything read and every real token keeps the position
it has in ``prompt + continuation``. transformers 5 renamed the forward argument that takes a
cache (``past_key_values`` to ``cache``); :class:`CausalLM` passes it under the name the loaded
model's ``forward`` has.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Iterator
from typing import Any

from mmbench.devices import resolve_device
from mmbench.errors import MmbenchError
from mmbench.llm import packaged_llm

# The seed paper's backbones by short names (the E4SRec variants and the zero-shot rankers take
# them); any other transformers model name or local folder is loaded as given.
PRESETS = {
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-3-70b": "meta-llama/Meta-Llama-3-70B",
}


@contextlib.contextmanager
def _gguf_bar_off() -> Iterator[None]:
    """Silence the plain tqdm bar transformers draws while it de-quantizes a GGUF file, which its
    progress-bar switch does not reach (a ``--quiet`` run prints no bar)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def load_pretrained(
    name: str | None, user: str, auto_class: str = "AutoModelForCausalLM", **options: Any
) -> tuple[Any, Any]:
    """The tokenizer and model of ``name`` (empty or None: the packaged SmolLM2, de-quantized
    from its GGUF file) through ``transformers.<auto_class>.from_pretrained(..., **options)``;
    a model that cannot be loaded is an :class:`MmbenchError` naming ``user``."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    location, gguf = packaged_llm(user) if not name else (name, {})
    try:
        with _gguf_bar_off():
            tokenizer = transformers.AutoTokenizer.from_pretrained(location, **gguf)
            model = getattr(transformers, auto_class).from_pretrained(location, **gguf, **options)
    except (OSError, ValueError) as exc:
        raise MmbenchError(f"{user}: cannot load {location}: {str(exc).splitlines()[0]}") from None
    return tokenizer, model


class CausalLM:
    """A causal LM on this machine in inference mode, in ``dtype`` ("float32", "bfloat16"; by
    default bf16 on CUDA, float32 elsewhere)."""

    def __init__(self, name: str | None, device: str, user: str, dtype: str | None = None):
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        cuda = self.device.startswith("cuda")
        torch_dtype = getattr(torch, dtype) if dtype else torch.bfloat16 if cuda else torch.float32
        self.tokenizer, model = load_pretrained(name, user, dtype=torch_dtype)
        self.model = model.to(self.device).eval()
        parameters = inspect.signature(self.model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"

    def encode(self, text: str) -> list[int]:
        """The text's token ids, without special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def continuation_logits(
        self, prompt_ids: list[int], continuations: list[list[int]], batch_size: int
    ) -> Iterator[tuple[int, Any]]:
        """For each batch of ``continuations`` (token ids, each non-empty): its first index and the
        float32 logits ``[batch, 1 + width, vocabulary]`` where position 0 is the next-token
        distribution after the prompt and position ``j`` the one after the continuation's first
        ``j`` tokens (positions past a continuation's end are padding)."""
        torch = self.torch
        with torch.inference_mode():
            out = self.model(torch.tensor([prompt_ids], device=self.device), use_cache=True, logits_to_keep=1)
            first = out.logits[0, -1].float()
            cache = getattr(out, "cache", None) or out.past_key_values
            n = len(prompt_ids)
            pad = self.tokenizer.eos_token_id or 0
            for start in range(0, len(continuations), batch_size):
                batch = continuations[start : start + batch_size]
                width = max(len(c) for c in batch)
                ids = torch.tensor([c + [pad] * (width - len(c)) for c in batch], device=self.device)
                mask = torch.tensor(
                    [[1] * (n + len(c)) + [0] * (width - len(c)) for c in batch], device=self.device
                )
                positions = n + torch.arange(width, device=self.device).expand(len(batch), -1)
                repeated = copy.deepcopy(cache)
                repeated.batch_repeat_interleave(len(batch))
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    **{self._cache_argument: repeated},
                ).logits.float()  # fmt: skip
                yield start, torch.cat([first.expand(len(batch), 1, -1), logits], dim=1)

    def generate(self, messages: list[dict], max_new_tokens: int) -> str:
        """Greedy chat completion; a model with no chat template (a base model) reads the
        messages' texts as one plain prompt."""
        torch = self.torch
        if self.tokenizer.chat_template is None:
            plain = "\n\n".join(m["content"] for m in messages) + "\n"
            ids = self.tokenizer(plain, return_tensors="pt")
        else:
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        ids = {k: v.to(self.device) for k, v in ids.items()}
        with torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
