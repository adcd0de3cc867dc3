"""Linking one country's 0-10 (or 1-5) answer scale to another's: equipercentile linking of two
distributions, and the fixed-offset fallback with open-ended top and bottom answers fitted to a latent
normal (method in ``docs/methods.md#calibration``). Pure numpy, no I/O."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Protocol

import numpy as np
import numpy.typing as npt

SCALE = 11  # recommend 0..10
FloatArray = npt.NDArray[np.float64]


class ScaleLike(Protocol):
    """A rating scale: its number of scores and the points each is worth."""

    @property
    def size(self) -> int: ...

    @property
    def points(self) -> FloatArray: ...


_ERF = np.vectorize(math.erf, otypes=[np.float64])
_INV = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])


def _phi(x: FloatArray) -> FloatArray:
    """Standard normal distribution function, element-wise (infinities allowed)."""
    return np.asarray(0.5 * (1.0 + _ERF(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))), dtype=np.float64)


def _edges(pmf: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each score's percentile interval [F(k-1), F(k)] of a 0..10 distribution (last axis)."""
    upper = np.cumsum(pmf, axis=-1)
    total = upper[..., -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(total > 0, upper / np.where(total > 0, total, 1.0), upper)
    lower = np.concatenate((np.zeros_like(upper[..., :1]), upper[..., :-1]), axis=-1)
    return lower, upper


def linking_matrix(country_pmf: FloatArray, reference_pmf: FloatArray) -> FloatArray:
    """M[k, j]: the share of a country's answer k that lands on reference score j (rows sum to 1).

    The scale is made continuous (each score spread evenly over its percentile interval) and a
    country's percentile interval of score k is cut by the reference's intervals: equipercentile
    linking without rounding, so a country's 10 may become part 9 and part 10 of the reference.
    Percentile ranks are open at both ends by nature, so the ceiling and the floor need no special case.
    Leading axes are batches (one matrix per bootstrap copy).
    """
    c_low, c_high = _edges(country_pmf)
    r_low, r_high = _edges(reference_pmf)
    overlap = np.clip(
        np.minimum(c_high[..., :, None], r_high[..., None, :])
        - np.maximum(c_low[..., :, None], r_low[..., None, :]),
        0.0,
        None,
    )
    width = (c_high - c_low)[..., :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = np.where(width > 0, overlap / width, 0.0)
    # A score the comparable answers never used: send it to the reference score at its percentile.
    unused = width[..., 0] <= 0
    if unused.any():
        size = matrix.shape[-1]
        target = np.minimum((r_high[..., None, :] < c_low[..., :, None]).sum(axis=-1), size - 1)
        one_hot = np.arange(size) == target[..., None]
        matrix = np.where(unused[..., None], one_hot.astype(np.float64), matrix)
    return np.asarray(matrix, dtype=np.float64)


def latent_normal(histogram: npt.ArrayLike, offset: float) -> FloatArray:
    """(mean, sd) of a normal experience, on the reference scale, that fits a country's histogram whose
    answer k covers [k - 0.5 - offset, k + 0.5 - offset]: weighted least squares of each cut point on
    the normal quantile of its cumulative share (weights: the binomial information of that share).
    Row-wise on a 2-D array of histograms. Only the open top and bottom answers use it."""
    h = np.atleast_2d(np.asarray(histogram, dtype=np.float64))
    size = h.shape[1]
    n = h.sum(axis=1, keepdims=True)
    cuts = np.arange(size - 1, dtype=np.float64) + 0.5 - offset
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.cumsum(h, axis=1)[:, :-1] / np.where(n > 0, n, 1.0)
    usable = (share > 0) & (share < 1)
    z = np.zeros_like(share)
    z[usable] = _INV(share[usable])
    weight = np.where(usable, np.exp(-(z**2)) / np.where(usable, share * (1 - share), 1.0), 0.0)
    sw = weight.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mz = (weight * z).sum(axis=1) / sw
        mc = (weight * cuts).sum(axis=1) / sw
        sxx = (weight * (z - mz[:, None]) ** 2).sum(axis=1)
        sxy = (weight * (z - mz[:, None]) * (cuts - mc[:, None])).sum(axis=1)
        sd = sxy / sxx
    mean = mc - sd * mz
    # Fewer than two usable cut points (every answer on one or two neighbouring scores): the spread
    # is not identified; take one scale point, the width of an answer, centred on the answers' mean.
    weak = ~(np.isfinite(sd) & (sd > 0.05)) | (usable.sum(axis=1) < 2)
    grades = np.arange(size, dtype=np.float64) - offset
    with np.errstate(divide="ignore", invalid="ignore"):
        fallback_mean = (h @ grades) / n[:, 0]
    mean = np.where(weak, fallback_mean, mean)
    sd = np.where(weak, 1.0, sd)
    return np.asarray(np.stack([mean, sd], axis=1), dtype=np.float64)


def offset_matrix(offset: float, size: int = SCALE, latent: tuple[float, float] | None = None) -> FloatArray:
    """M[k, j] for a fixed cultural offset: the country's k is the reference's k - offset.

    An inner answer k covers [k - 0.5 - offset, k + 0.5 - offset] of the reference scale, spread evenly.
    The top answer is open-ended ("at least size - 1.5 - offset": a British 10 at +1.5 means "8 or
    more" on the French scale, not "8 or 9"), and so is the bottom one; how an open end divides among
    the reference scores follows the tail of the country's ``latent`` normal (``latent_normal``). With
    no ``latent``, a standard tail one scale point wide is assumed.
    """
    k = np.arange(size, dtype=np.float64)
    low = k[:, None] - 0.5 - offset
    high = k[:, None] + 0.5 - offset
    ref_low = np.where(k == 0, -np.inf, k - 0.5)[None, :]
    ref_high = np.where(k == size - 1, np.inf, k + 0.5)[None, :]
    matrix = np.clip(np.minimum(high, ref_high) - np.maximum(low, ref_low), 0.0, None)
    mean, sd = latent if latent is not None else (size / 2.0 - offset, 1.0)
    top, bottom = open_ends(offset, size, np.array([mean]), np.array([sd]))
    matrix[size - 1], matrix[0] = top[0], bottom[0]
    return np.asarray(matrix, dtype=np.float64)


def open_ends(offset: float, size: int, mean: FloatArray, sd: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Rows of the offset matrix for the top answer ([size - 1.5 - offset, inf)) and the bottom one
    ((-inf, 0.5 - offset]): the mass of each latent normal (one per row of ``mean``/``sd``) that falls
    in each reference score, normalised; a tail holding nothing goes to the nearest reference score."""
    k = np.arange(size, dtype=np.float64)
    ref_low = np.where(k == 0, -np.inf, k - 0.5)
    ref_high = np.where(k == size - 1, np.inf, k + 0.5)
    rows = []
    for lo, hi in ((size - 1.5 - offset, math.inf), (-math.inf, 0.5 - offset)):
        edges_low = np.maximum(ref_low, lo)
        edges_high = np.minimum(ref_high, hi)
        z_high = (edges_high[None, :] - mean[:, None]) / sd[:, None]
        z_low = (edges_low[None, :] - mean[:, None]) / sd[:, None]
        mass = np.where(edges_high > edges_low, np.clip(_phi(z_high) - _phi(z_low), 0.0, None), 0.0)
        total = mass.sum(axis=1, keepdims=True)
        nearest = np.arange(size) == int(np.clip(round(lo if math.isfinite(lo) else hi), 0, size - 1))
        rows.append(
            np.where(total > 1e-12, mass / np.where(total > 0, total, 1.0), nearest.astype(np.float64))
        )
    return rows[0], rows[1]


def offset_value(histogram: FloatArray, offset: float, scale: ScaleLike) -> tuple[float, FloatArray]:
    """Calibrated value of a histogram under a fixed offset, and the points each answer is worth."""
    mean, sd = latent_normal(histogram, offset)[0]
    per_score = offset_matrix(offset, scale.size, (float(mean), float(sd))) @ scale.points
    return float(histogram @ per_score / histogram.sum()), per_score


def offset_values(histograms: FloatArray, offset: float, scale: ScaleLike) -> FloatArray:
    """``offset_value`` of many histograms: the inner answers' points are fixed, only the open ends
    follow each histogram's fitted tail."""
    fits = latent_normal(histograms, offset)
    per_score = np.tile(offset_matrix(offset, scale.size) @ scale.points, (histograms.shape[0], 1))
    top, bottom = open_ends(offset, scale.size, fits[:, 0], fits[:, 1])
    per_score[:, -1], per_score[:, 0] = top @ scale.points, bottom @ scale.points
    total = histograms.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(total > 0, (histograms * per_score).sum(axis=1) / total, np.nan))
