"""Resampling the count table is resampling the rows: the whole-table bootstrap of the calibration
draws each copy as Multinomial(n, table / n), which is what drawing n answers with replacement and
counting them by (stratum, score) gives, since the statistic sees answers only through that table."""

from __future__ import annotations

import numpy as np
import polars as pl

from prevenance.voice import calibration


def _table(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 30, size=(3, 11)).astype(np.float64)


def test_multinomial_copies_have_the_moments_of_row_resampling() -> None:
    rng = np.random.default_rng(11)
    table = _table(rng)
    n = int(table.sum())
    replicates = 20_000
    rows = np.repeat(np.arange(table.size), table.ravel().astype(np.int64))  # one entry per answer
    by_rows = np.stack(
        [np.bincount(rng.choice(rows, size=n, replace=True), minlength=table.size) for _ in range(replicates)]
    )
    by_counts = rng.multinomial(n, table.ravel() / n, size=replicates)
    p = table.ravel() / n
    theory_var = n * p * (1 - p)
    for draws in (by_rows, by_counts):
        se = np.sqrt(theory_var / replicates)
        assert np.all(np.abs(draws.mean(axis=0) - n * p) <= 5 * se + 1e-12)
        assert np.allclose(draws.var(axis=0, ddof=1), theory_var, rtol=0.08, atol=0.05)
    # the two ways agree on the covariance between cells too (a multinomial's is -n p_i p_j)
    i, j = (int(k) for k in np.argsort(p)[-2:])
    for draws in (by_rows, by_counts):
        covariance = np.cov(draws[:, i], draws[:, j])[0, 1]
        assert abs(covariance - (-n * p[i] * p[j])) < 0.15 * n * p[i] * p[j] + 0.5


def test_calibration_of_rows_and_of_their_counts_is_identical_draw_for_draw() -> None:
    rng = np.random.default_rng(5)
    size = 3000
    frame = pl.DataFrame(
        {
            "country": rng.choice(["FR", "GB"], size=size).tolist(),
            "reason": rng.choice(["a", "b", "c"], size=size).tolist(),
            "channel": rng.choice(["phone", "email"], size=size).tolist(),
            "product": rng.choice(["gold", "platinum"], size=size).tolist(),
            "recommend": pl.Series(np.clip(rng.normal(7.5, 2, size).round(), 0, 10), dtype=pl.Int8),
            "interaction": pl.Series(np.clip(rng.normal(4, 1, size).round(), 1, 5), dtype=pl.Int8),
        }
    )
    counts = frame.group_by(frame.columns).agg(pl.len().cast(pl.Int64).alias(calibration.WEIGHT_COLUMN))
    assert counts.height < size / 3
    by_rows = calibration.country_scores(frame, replicates=400)
    by_counts = calibration.country_scores(counts.sample(fraction=1.0, shuffle=True, seed=3), replicates=400)
    assert by_counts == by_rows
    assert by_rows[1]["method_code"] == "estimated" and by_rows[1]["calibrated"]["ci_low"] is not None
