"""Which torch device a command runs on."""

from __future__ import annotations

from mmbench.errors import MmbenchError


def resolve_device(name: str) -> str:
    """``auto`` = ``cuda`` when a GPU is visible, else ``cpu``; an explicit name must exist here."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MmbenchError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MmbenchError(
            f"device {name!r}: CUDA is not available on this machine; use --device cpu or auto"
        )
    return str(device)
