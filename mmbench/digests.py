"""The project's SHA-256 digests, in hex: of a file, of bytes, and the short digest of a text
that caches key their entries by."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def text_digest(text: str) -> str:
    """A stable short digest of a text (a prompt, lyrics, a request): SHA-256 of its UTF-8, 16 hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
