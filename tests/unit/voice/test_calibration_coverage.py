"""Seeded planted-offset simulations of the country calibration at realistic sizes: bias and interval
coverage of the estimated path (equipercentile linking, whole-table bootstrap) and of the fallback
offset table (open-ended ends), and a country with too few answers flagged instead of calibrated.

Every parameter is fixed here (nothing drawn at collection time). The large runs quoted in
``docs/methods.md`` come from ``python -m tests.unit.voice.test_calibration_coverage`` (see its end).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import polars as pl
import pytest

from prevenance.voice import calibration

REASONS, CHANNELS, PRODUCTS = 8, 3, 2
SD = 1.8
OFFSET = 1.5


def _effects() -> np.ndarray:
    """Experience mean of each fine stratum (reason x channel x product): fixed, not drawn."""
    r = np.arange(REASONS)[:, None, None]
    c = np.arange(CHANNELS)[None, :, None]
    p = np.arange(PRODUCTS)[None, None, :]
    return (6.4 + 0.25 * r - 0.4 * c + 0.6 * p).ravel().astype(float)


def _mix(tilt: float) -> np.ndarray:
    """Share of each stratum in a country's contacts: reasons weighted unevenly, ``tilt`` moves the
    mix toward the better strata (a country serving easier interactions)."""
    means = _effects()
    reason_weight = np.repeat(np.array([8, 10, 7, 6, 5, 3, 2, 2], dtype=float), CHANNELS * PRODUCTS)
    weight = reason_weight * np.exp(tilt * (means - means.mean()))
    return weight / weight.sum()


def _rtf_of_experience(means: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Expected RTF (points) of answers round(e + shift) clipped to 0..10, e ~ N(mean, SD), per stratum."""

    def cdf(x: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))

    promoter = 1.0 - cdf((8.5 - shift - means) / SD)
    detractor = cdf((6.5 - shift - means) / SD)
    return 100.0 * (promoter - detractor)


def truth(tilt: float = 0.0) -> float:
    """The calibrated RTF a country should get: its own mix, rated on the reference's scale."""
    return float(_mix(tilt) @ _rtf_of_experience(_effects()))


def country(name: str, n: int, offset: float, rng: np.random.Generator, tilt: float = 0.0) -> pl.DataFrame:
    """n answers of a country whose customers rate ``offset`` higher for the same experience."""
    stratum = rng.choice(REASONS * CHANNELS * PRODUCTS, size=n, p=_mix(tilt))
    experience = _effects()[stratum] + rng.normal(0.0, SD, n)
    r, rest = np.divmod(stratum, CHANNELS * PRODUCTS)
    c, p = np.divmod(rest, PRODUCTS)
    return pl.DataFrame(
        {
            "country": name,
            "reason": pl.Series([f"r{x}" for x in r]),
            "channel": pl.Series([f"c{x}" for x in c]),
            "product": pl.Series([f"p{x}" for x in p]),
            "recommend": pl.Series(np.clip(np.rint(experience + offset), 0, 10), dtype=pl.Int8),
        }
    )


def simulate(
    *, path: str, datasets: int, seed: int, n_fr: int = 600, n_gb: int = 400, replicates: int = 200
) -> dict[str, float]:
    """Mean error, coverage and mean width of GB's calibrated RTF over seeded data sets."""
    rng = np.random.default_rng(seed)
    target = truth()
    errors, covered, widths = [], 0, []
    for i in range(datasets):
        answers = pl.concat([country("FR", n_fr, 0.0, rng), country("GB", n_gb, OFFSET, rng)])
        row = next(
            r
            for r in calibration.country_scores(
                answers,
                reference="FR",
                fallback={"GB": OFFSET},
                min_comparable=200 if path == "estimated" else 10**9,
                replicates=replicates,
                seed=seed * 1000 + i,
            )
            if r["country"] == "GB"
        )
        assert row["method_code"] == path
        cal = row["calibrated"]
        errors.append(cal["value"] - target)
        covered += cal["ci_low"] <= target <= cal["ci_high"]
        widths.append(cal["ci_high"] - cal["ci_low"])
    return {
        "truth": target,
        "bias": float(np.mean(errors)),
        "coverage": covered / datasets,
        "width": float(np.mean(widths)),
    }


# 150 data sets: the binomial SE of a 0.95 coverage is sqrt(0.95 * 0.05 / 150) = 0.018, so 0.91 is
# 2.2 SE below the nominal 0.95 (and the large runs in docs/methods.md measure >= 0.93). The SE of
# the mean error over 150 data sets is about 6 / sqrt(150) = 0.5 point, so |bias| < 1.5 is 3 SE.
DATASETS = 150


@pytest.mark.parametrize("path", ["estimated", "fallback"])
def test_planted_offset_is_removed_without_bias_and_the_interval_covers(path: str) -> None:
    found = simulate(path=path, datasets=DATASETS, seed=11 if path == "estimated" else 12)
    assert abs(found["bias"]) < 1.5, found
    assert found["coverage"] >= 0.91, found


def test_the_open_ended_top_answer_keeps_the_promoters() -> None:
    # The old table mapped a +1.5 country's 10 to "8 or 9"; open-ended it is "8 or more".
    rng = np.random.default_rng(5)
    gb = country("GB", 20_000, OFFSET, rng)
    histogram = np.bincount(gb["recommend"].to_numpy(), minlength=11).astype(float)
    value, _ = calibration.offset_value(histogram, OFFSET, calibration.RTF_SCALE)
    assert abs(value - truth()) < 1.0
    mean, sd = calibration.latent_normal(histogram, OFFSET)[0]
    matrix = calibration.offset_matrix(OFFSET, latent=(mean, sd))
    assert matrix[10, :8].sum() == 0 and matrix[10, 10] > 0.3 and matrix[10].sum() == pytest.approx(1.0)


def test_a_country_with_a_handful_of_answers_is_flagged_and_never_claims_certainty() -> None:
    rng = np.random.default_rng(3)
    answers = pl.concat([country("FR", 600, 0.0, rng), country("GB", 1, OFFSET, rng)])
    gb = next(r for r in calibration.country_scores(answers, fallback={"GB": OFFSET}) if r["country"] == "GB")
    assert gb["too_few"] is True and gb["method_code"] == "too_few"
    assert gb["calibrated"]["value"] is None and gb["calibrated"]["ci_low"] is None
    # Enough answers but all alike: the interval still has width.
    same = pl.DataFrame(
        {
            "country": ["FR"] * 300 + ["GB"] * 40,
            "reason": "r0",
            "channel": "c0",
            "product": "p0",
            "recommend": pl.Series([7] * 300 + [10] * 40, dtype=pl.Int8),
        }
    )
    gb = next(r for r in calibration.country_scores(same, fallback={"GB": OFFSET}) if r["country"] == "GB")
    assert gb["too_few"] is False
    assert gb["calibrated"]["ci_high"] - gb["calibrated"]["ci_low"] > 5


if __name__ == "__main__":  # the large runs quoted in docs/methods.md
    datasets = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    for n_gb in (150, 400, 1500):
        for path in ("estimated", "fallback"):
            if path == "estimated" and n_gb < 250:
                continue
            found = simulate(
                path=path, datasets=datasets, seed=101, n_gb=n_gb, n_fr=max(600, n_gb), replicates=1000
            )
            print(
                f"path={path} n_gb={n_gb} datasets={datasets} "
                + " ".join(f"{k}={v:.3f}" for k, v in found.items())
            )
