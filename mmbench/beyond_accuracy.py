"""Beyond-accuracy measures of the top of each ranking: novelty, popularity bias, diversity.

Each function takes ``top``, an integer array ``[n_instances, K_max]`` of the catalogue codes at
positions 1..K_max of each submitted ranking (-1 where a ranking is shorter, or for an instance
without a prediction), and returns a mean over the rankings with at least one track (two for
diversity). Popularity is the track's number of training plays (``n_plays_train`` of the
``tracks`` config), so nothing from the validation or test period enters.
"""

from __future__ import annotations

import numpy as np

K = 10  # the cut-off of every beyond-accuracy measure


def _mean_over_lists(per_track: np.ndarray, top: np.ndarray, k: int) -> float:
    """Mean over rankings of the mean of ``per_track`` over each ranking's first ``k`` tracks."""
    codes = top[:, :k]
    present = codes >= 0
    n = present.sum(axis=1)
    lists = n > 0
    if not lists.any():
        return 0.0
    values = np.where(present, per_track[np.maximum(codes, 0)], 0.0).sum(axis=1)
    return float(np.mean(values[lists] / n[lists]))


def self_information(n_plays_train: np.ndarray) -> np.ndarray:
    """-log2 p(t) per track, with p(t) = (n_t + 1) / (sum_u n_u + |I|): the training play share,
    add-one smoothed so that a track never played in training has a finite value (the item
    novelty of Vargas and Castells, RecSys 2011; see :func:`novelty_at_k`)."""
    counts = np.asarray(n_plays_train, dtype=np.float64)
    return -np.log2((counts + 1.0) / (counts.sum() + counts.size))


def novelty_at_k(top: np.ndarray, n_plays_train: np.ndarray, k: int = K) -> float:
    """Novelty@K = mean over rankings of the mean self-information -log2 p(t) of their top K
    tracks (:func:`self_information`); higher = less popular recommendations.

    Reference: Vargas and Castells, "Rank and relevance in novelty and diversity metrics for
    recommender systems", RecSys 2011: the item novelty -log2 p(i | seen) of their expected free
    discovery (EFD), p(i | seen) the item's share of all interactions (here of the training
    plays, add-one smoothed), averaged without their rank discount or relevance weighting. Not
    the user-count form of Zhou et al., PNAS 107(10), 2010, log2(|U| / k_t) with k_t the number
    of users who have the item, which ignores repeated plays.
    """
    return _mean_over_lists(self_information(n_plays_train), top, k)


def popularity_percentile(n_plays_train: np.ndarray) -> np.ndarray:
    """Each track's mid-rank percentile of training popularity in [0, 1]:
    (#{u : n_u < n_t} + (#{u : n_u = n_t} - 1) / 2) / (|I| - 1); 1 = the most played track."""
    counts = np.asarray(n_plays_train)
    if counts.size < 2:
        return np.full(counts.size, 0.5)
    ordered = np.sort(counts)
    below = np.searchsorted(ordered, counts, side="left")
    ties = np.searchsorted(ordered, counts, side="right") - below
    return (below + (ties - 1) / 2.0) / (counts.size - 1)


def popularity_percentile_at_k(top: np.ndarray, n_plays_train: np.ndarray, k: int = K) -> float:
    """Popularity bias@K = mean over rankings of the mean training-popularity percentile
    (:func:`popularity_percentile`) of their top K tracks; 0.5 = the catalogue's median.

    A percentile version of the average recommendation popularity (ARP) of Abdollahpouri, Burke
    and Mobasher, "Managing popularity bias in recommender systems with personalized
    re-ranking", FLAIRS 2019, bounded so that it compares across catalogues.
    """
    return _mean_over_lists(popularity_percentile(n_plays_train), top, k)


def standardise(embeddings: np.ndarray) -> np.ndarray:
    """The rows of ``embeddings`` with each dimension centred and scaled by its mean and standard
    deviation (ddof 0) over the rows that have a vector (no NaN); NaN rows stay NaN.

    A dimension with zero spread is only centred, so it is 0 for every track: its spread counts
    as zero when below 1e-12 of the dimension's largest magnitude, which float rounding of a
    constant column cannot exceed and float32 data that varies at all cannot fall below.
    """
    emb = np.array(embeddings, dtype=np.float64)
    has = ~np.isnan(emb).any(axis=1)
    if not has.any():
        return emb
    rows = emb[has]
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    varies = std > 1e-12 * np.abs(rows).max(axis=0)
    emb -= mean
    emb /= np.where(varies, std, 1.0)
    emb[np.ix_(has, ~varies)] = 0.0
    return emb


def intra_list_diversity_at_k(
    top: np.ndarray, embeddings: np.ndarray, k: int = K, chunk: int = 4_096
) -> float:
    """ILD@K = mean over rankings of the mean pairwise cosine distance 1 - cos(z_s, z_t) over
    the pairs of their top K tracks that have an embedding (rows of ``embeddings`` that are NaN
    have none); rankings with fewer than two such tracks are left out.

    ``z`` is the standardised embedding (:func:`standardise`): each dimension centred and scaled
    by its mean and standard deviation over the tracks of ``embeddings`` that have a vector (the
    catalogue, when the evaluator passes its catalogue-indexed matrix). Published content vectors
    are not centred (MFCC statistics share a large common offset), so raw cosines sit near 1 and
    the distances in a sliver near 0 whose width depends on the config's offsets and units;
    standardised, they spread over [0, 2] and no longer move with a common offset or with a
    dimension's unit. A track exactly at the mean has no direction and counts as one without an
    embedding.

    Reference: Ziegler, McNee, Konstan and Lausen, "Improving recommendation lists through topic
    diversification", WWW 2005 (intra-list similarity; here its distance form).
    """
    # In place on the standardised copy: one catalogue-sized float64 matrix at a time (the real
    # catalogue's 383,670 tracks x 768 dimensions are 2.4 GB), and rankings a chunk at a time.
    unit = standardise(embeddings)
    has = ~np.isnan(unit).any(axis=1)
    unit[~has] = 0.0
    norms = np.linalg.norm(unit, axis=1)
    usable = has & (norms > 0)
    unit /= np.where(usable, norms, 1.0)[:, None]
    total, lists = 0.0, 0
    for start in range(0, top.shape[0], chunk):
        codes = top[start : start + chunk, :k]
        valid = (codes >= 0) & usable[np.maximum(codes, 0)]
        vectors = unit[np.maximum(codes, 0)] * valid[..., None]
        m = valid.sum(axis=1)
        sum_vec = vectors.sum(axis=1)
        # Sum of cosines over ordered pairs s != t = |sum of unit vectors|^2 - m.
        pair_cos = (np.einsum("nd,nd->n", sum_vec, sum_vec) - m) / np.maximum(m * (m - 1), 1)
        keep = m >= 2
        total += float((1.0 - pair_cos[keep]).sum())
        lists += int(keep.sum())
    return total / lists if lists else 0.0
