"""Progress bars that suit where the output goes: a live bar on a terminal; redirected to a
file or a CI log, one plain line every few seconds instead of a stream of carriage returns."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tqdm.auto import tqdm

LOG_INTERVAL = 10.0  # seconds between two lines when the output is not a terminal


class _Lines:
    """A text stream that turns each carriage-return redraw of a bar into its own line."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def on_terminal() -> bool:
    """Whether progress output goes to a terminal (stderr), where bars may redraw in place."""
    return sys.stderr.isatty()


def progress_bar(iterable: Any = None, **options: Any) -> tqdm:
    """A tqdm bar (same arguments) on stderr: live on a terminal, else a line every
    :data:`LOG_INTERVAL` seconds and a last one when it ends."""
    if on_terminal():
        return tqdm(iterable, **options)
    options.setdefault("mininterval", LOG_INTERVAL)
    options.setdefault("maxinterval", LOG_INTERVAL * 6)
    return tqdm(iterable, file=_Lines(sys.stderr), ascii=True, ncols=100, **options)


@contextmanager
def datasets_quiet() -> Iterator[None]:
    """Within the block, the ``datasets`` library draws none of its own bars ("Generating ...
    split"); its previous setting is restored after."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()
