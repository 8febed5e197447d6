"""How a track's name is written and compared: the normal form that track ids and the zero-shot
rankers' answer parsing compare names by, and the text a model reads a track as (the ``text``
content config, the zero-shot rankers' prompts)."""

from __future__ import annotations

import unicodedata

import polars as pl


def normalize_name(name: str) -> str:
    """Unicode NFKC, casefold, whitespace runs collapsed to one space and stripped."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def track_text(artist: str = "artist_name", title: str = "track_name") -> pl.Expr:
    """A track as ``artist - title``, from the columns ``artist`` and ``title``."""
    return pl.col(artist) + " - " + pl.col(title)
