"""The ``text-<encoder>`` content kind: a sentence embedding of each catalogue track's name as
``artist - title`` (:func:`mmbench.tracks.track_text`, the rendering the zero-shot rankers use),
with the encoders of :mod:`mmbench.builders.sentences`. It needs no manifest, so every build has a
content config, the real data's included; the recipe's ``enrich.text_encoder = ""`` turns it off.

Every track has a name, so the config covers the whole catalogue and the instances carry no
``target_has_`` label for it (the label would be true everywhere)."""

from __future__ import annotations

import polars as pl

from mmbench.tracks import track_text


def catalog_texts(catalog: pl.DataFrame) -> pl.DataFrame:
    """(track_id, text) of every track of ``catalog`` (which has artist_name and track_name)."""
    return catalog.select("track_id", track_text().alias("text"))
