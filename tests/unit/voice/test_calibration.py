"""Culture-aware country comparison: a planted cultural offset must be recovered; barometers compared
with their uncertainty."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.voice import calibration

REASONS = np.array(["lost_card", "statement", "points", "travel"])
CHANNELS = np.array(["phone", "email", "chat"])
PRODUCTS = np.array(["gold", "platinum"])


def country_answers(
    country: str, n: int, offset: float, rng: np.random.Generator, quality: float = 0.0
) -> pl.DataFrame:
    """Answers whose underlying experience depends on the stratum only; the country adds ``offset`` to the
    rating it gives for the same experience (and ``quality`` to the experience itself)."""
    r, c, p = rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 2, n)
    experience = 6.6 + 0.5 * r - 0.4 * c + 0.6 * p + quality + rng.normal(0, 1.8, n)
    recommend = np.clip(np.rint(experience + offset), 0, 10)
    return pl.DataFrame(
        {
            "country": country,
            "reason": REASONS[r],
            "channel": CHANNELS[c],
            "product": PRODUCTS[p],
            "recommend": pl.Series(recommend, dtype=pl.Int8),
        }
    )


def by_country(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["country"]): r for r in rows}


def test_a_planted_british_offset_is_removed_by_the_calibration() -> None:
    rng = np.random.default_rng(42)
    answers = pl.concat([country_answers("FR", 6000, 0.0, rng), country_answers("GB", 6000, 1.5, rng)])
    rows = by_country(calibration.country_scores(answers, reference="FR"))
    fr, gb = rows["FR"], rows["GB"]
    fr_raw, gb_raw, gb_cal = fr["raw"], gb["raw"], gb["calibrated"]
    assert isinstance(fr_raw, dict) and isinstance(gb_raw, dict) and isinstance(gb_cal, dict)
    # Raw: GB looks far better than FR, significantly (the intervals do not even touch).
    assert gb_raw["ci_low"] > fr_raw["ci_high"]
    assert gb_raw["value"] - fr_raw["value"] > 25
    # Calibrated: GB is back to FR within the intervals (same experience, same score).
    assert gb_cal["ci_low"] <= fr_raw["value"] <= gb_cal["ci_high"]
    assert abs(gb_cal["value"] - fr_raw["value"]) < 5
    assert gb["method"] == calibration.METHOD_ESTIMATED
    assert fr["method"] == calibration.METHOD_REFERENCE and fr["calibrated"] == fr["raw"]
    assert 1.0 < float(gb["offset"]) < 1.7  # type: ignore[arg-type]  # the 10-ceiling eats a little of the 1.5
    assert gb["comparable_n"] == 6000


def test_a_country_with_genuinely_better_service_in_a_better_mix_keeps_part_of_its_lead() -> None:
    # Same culture as FR, but ES handles mostly the strata where experience is better (platinum): the
    # linking is estimated stratum by stratum, so the mix difference survives calibration.
    rng = np.random.default_rng(8)
    fr = country_answers("FR", 6000, 0.0, rng)
    es = country_answers("ES", 6000, 0.0, rng)
    es = pl.concat(
        [es, es.filter(pl.col("product") == "platinum"), es.filter(pl.col("product") == "platinum")]
    )
    rows = by_country(calibration.country_scores(pl.concat([fr, es]), reference="FR"))
    es_cal, fr_raw = rows["ES"]["calibrated"], rows["FR"]["raw"]
    assert isinstance(es_cal, dict) and isinstance(fr_raw, dict)
    assert es_cal["ci_low"] > fr_raw["value"]


def test_the_fallback_offset_is_used_when_a_country_has_too_few_comparable_answers() -> None:
    rng = np.random.default_rng(5)
    answers = pl.concat([country_answers("FR", 5000, 0.0, rng), country_answers("GB", 120, 1.5, rng)])
    rows = by_country(calibration.country_scores(answers, reference="FR", fallback={"gb": 1.5}))
    gb = rows["GB"]
    assert gb["method"] == calibration.METHOD_FALLBACK
    gb_raw, gb_cal, fr_raw = gb["raw"], gb["calibrated"], rows["FR"]["raw"]
    assert isinstance(gb_raw, dict) and isinstance(gb_cal, dict) and isinstance(fr_raw, dict)
    assert gb_cal["value"] < gb_raw["value"] - 20
    # 120 answers only: the calibrated interval overlaps FR's, the raw one does not.
    assert gb_cal["ci_low"] <= fr_raw["ci_high"] and fr_raw["ci_low"] <= gb_cal["ci_high"]
    assert gb_raw["ci_low"] > fr_raw["ci_high"]
    without = by_country(calibration.country_scores(answers, reference="FR"))["GB"]
    assert without["method"] == calibration.METHOD_NONE and without["calibrated"] == without["raw"]


def test_the_calibration_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    answers = pl.concat([country_answers("FR", 2000, 0.0, rng), country_answers("GB", 2000, 1.5, rng)])
    assert calibration.country_scores(answers) == calibration.country_scores(answers)


def test_linking_rows_are_distributions_and_identical_scales_link_to_themselves() -> None:
    pmf = np.array([1, 1, 2, 3, 5, 8, 13, 21, 34, 20, 10], dtype=float)
    same = calibration.linking_matrix(pmf, pmf)
    assert np.allclose(same, np.eye(11))
    shifted = calibration.linking_matrix(np.roll(pmf, 1), pmf)
    assert np.allclose(shifted.sum(axis=1), 1.0)


def test_offset_matrix_moves_answers_down_the_scale_and_leaves_the_ends_open() -> None:
    matrix = calibration.offset_matrix(1.5, latent=(7.4, 1.7))
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert matrix[5, 3] == pytest.approx(0.5) and matrix[5, 4] == pytest.approx(0.5)
    # The top answer means "8 or more" on the reference scale: split by the latent tail above 8.
    assert matrix[10, :8].sum() == 0.0
    # P(8 <= e < 8.5 | e >= 8) for e ~ N(7.4, 1.7): 0.285 of the 10s are passives on the reference scale.
    assert matrix[10, 8] == pytest.approx(0.285, abs=0.005) and matrix[10, 9:].sum() == pytest.approx(
        0.715, abs=0.005
    )
    assert matrix[0, 0] == pytest.approx(1.0)
    assert np.allclose(calibration.offset_matrix(0.0, latent=(7.0, 2.0)), np.eye(11))


# --- barometers -----------------------------------------------------------------------------------


def ours() -> list[dict[str, object]]:
    return [
        {
            "country": "FR",
            "raw": {"value": 30.0, "n": 2000, "ci_low": 27.0, "ci_high": 33.0, "method": "x"},
            "excellence": {"value": 40.0, "n": 2000, "ci_low": 37.9, "ci_high": 42.1, "method": "y"},
        },
        {"country": "GB", "raw": {"value": 55.0, "n": 1000, "ci_low": 51.0, "ci_high": 59.0, "method": "x"}},
    ]


def test_barometers_are_compared_with_a_confidence_interval_when_their_n_is_known() -> None:
    barometers = pl.DataFrame(
        {
            "source": ["Kantar", "Kantar", "Ipsos", "Ipsos"],
            "country": ["FR", "GB", "FR", "DE"],
            "quarter": ["2026Q3"] * 4,
            "metric": ["rtf", "rtf", "excellence", "rtf"],
            "value": [20.0, 54.0, 41.0, 10.0],
            "n": [1500, None, 800, 500],
        }
    )
    rows = calibration.compare_with_barometers(ours(), barometers)
    keyed = {(r["source"], r["country"], r["metric"]): r for r in rows}
    fr = keyed[("Kantar", "FR", "rtf")]
    assert fr["difference"] == pytest.approx(10.0)
    assert fr["ci_low"] < 10.0 < fr["ci_high"]
    assert fr["ci_low"] > 0 and fr["significant"] is True
    # Its interval is wider than ours alone: the barometer's own sampling error counts.
    assert fr["ci_high"] - fr["ci_low"] > 6.0
    gb = keyed[("Kantar", "GB", "rtf")]
    assert gb["flag"] == "n unknown" and gb["ci_low"] is None and gb["difference"] == pytest.approx(1.0)
    exc = keyed[("Ipsos", "FR", "excellence")]
    assert exc["difference"] == pytest.approx(-1.0) and exc["significant"] is False
    assert keyed[("Ipsos", "DE", "rtf")]["flag"] == "no comparable figure of ours"


pmfs = st.lists(st.integers(0, 50), min_size=11, max_size=11).filter(lambda xs: sum(xs) > 0)


@given(pmfs, pmfs)
def test_every_answer_is_fully_linked_onto_the_reference_scale(
    country: list[int], reference: list[int]
) -> None:
    matrix = calibration.linking_matrix(np.array(country, dtype=float), np.array(reference, dtype=float))
    assert np.all(matrix >= 0)
    assert np.allclose(matrix.sum(axis=1), 1.0)


@given(pmfs, pmfs)
def test_linking_preserves_the_order_of_the_scale(country: list[int], reference: list[int]) -> None:
    # A higher score never maps to a lower expected reference score.
    matrix = calibration.linking_matrix(np.array(country, dtype=float), np.array(reference, dtype=float))
    expected = matrix @ np.arange(11)
    assert np.all(np.diff(expected) >= -1e-9)


def test_scores_by_rows_are_accepted_and_a_barometer_without_value_is_flagged() -> None:
    ours_rows = [
        {"key": "FR", "rtf": {"value": 30.0, "n": 400, "ci_low": 22.0, "ci_high": 38.0, "method": "x"}}
    ]
    barometers = pl.DataFrame(
        {
            "source": ["A", "B"],
            "country": ["fr", "FR"],
            "quarter": ["2026Q3"] * 2,
            "metric": ["RTF", "rtf"],
            "value": [30.0, None],
            "n": [400, 400],
        },
        schema_overrides={"value": pl.Float64},
    )
    rows = {r["source"]: r for r in calibration.compare_with_barometers(ours_rows, barometers)}
    assert rows["A"]["difference"] == pytest.approx(0.0) and rows["A"]["significant"] is False
    assert rows["A"]["ci_low"] < 0 < rows["A"]["ci_high"]
    assert rows["B"]["flag"] == "no barometer value" and rows["B"]["difference"] is None


def test_answers_without_a_country_are_left_out_of_the_country_comparison() -> None:
    rng = np.random.default_rng(3)
    fr = country_answers("FR", 300, 0.0, rng)
    unknown = country_answers("FR", 50, 0.0, rng).with_columns(pl.lit(None, dtype=pl.String).alias("country"))
    rows = calibration.country_scores(pl.concat([fr, unknown]))
    assert [r["country"] for r in rows] == ["FR"] and rows[0]["n"] == 300


def test_the_excellence_rate_is_calibrated_the_same_way_on_the_five_point_scale() -> None:
    rng = np.random.default_rng(21)

    def with_interaction(country: str, offset: float) -> pl.DataFrame:
        frame = country_answers(country, 6000, 0.0, rng)
        experience = frame["recommend"].to_numpy().astype(float)
        rating = np.clip(np.rint((experience - 2.0) / 1.6 + rng.normal(0, 0.5, frame.height) + offset), 1, 5)
        return frame.with_columns(pl.Series("interaction", rating, dtype=pl.Int8))

    rows = by_country(
        calibration.country_scores(pl.concat([with_interaction("FR", 0.0), with_interaction("GB", 0.8)]))
    )
    fr_raw, gb_raw, gb_cal = (
        rows["FR"]["excellence_raw"],
        rows["GB"]["excellence_raw"],
        rows["GB"]["excellence_calibrated"],
    )
    assert isinstance(fr_raw, dict) and isinstance(gb_raw, dict) and isinstance(gb_cal, dict)
    assert gb_raw["ci_low"] > fr_raw["ci_high"]
    assert gb_cal["ci_low"] <= fr_raw["value"] <= gb_cal["ci_high"]
    assert rows["GB"]["excellence_method"] == calibration.METHOD_ESTIMATED
    assert rows["FR"]["excellence_calibrated"] == fr_raw
