"""The score formulas and their intervals, read as a specification; the coverage of every 95% interval
is checked by simulation (seeded, so the same run always gives the same answer)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.voice import stats

REPLICATIONS = 2_000


def test_rtf_is_promoters_minus_detractors_in_points() -> None:
    # 3 promoters (9, 10, 10), 2 passives (7, 8), 5 detractors (0..6) out of 10.
    score = stats.rtf([9, 10, 10, 7, 8, 0, 3, 5, 6, 6])
    assert score.value == pytest.approx(-20.0)
    assert score.n == 10
    assert score.ci_low is not None and score.ci_high is not None
    assert score.ci_low < -20.0 < score.ci_high
    assert "adjusted Wald" in score.method


def test_rtf_ignores_missing_answers_and_counts_only_answers_with_a_value() -> None:
    score = stats.rtf([10, None, 9, float("nan"), 0])
    assert score.n == 3
    assert score.value == pytest.approx(100.0 / 3)


def test_empty_scores_have_no_value_and_n_zero() -> None:
    for score in (stats.rtf([]), stats.excellence([None, None])):
        assert score.value is None and score.n == 0
        assert score.ci_low is None and score.ci_high is None


def test_out_of_scale_answers_are_refused() -> None:
    with pytest.raises(ValueError):
        stats.rtf([11])
    with pytest.raises(ValueError):
        stats.excellence([0])


def test_excellence_counts_only_the_top_box_not_very_good() -> None:
    score = stats.excellence([5, 5, 4, 4, 4, 3, 2, 1])
    assert score.value == pytest.approx(25.0)
    assert score.n == 8
    assert score.ci_low is not None and score.ci_high is not None
    assert 0.0 < score.ci_low < 25.0 < score.ci_high < 100.0
    assert "Wilson" in score.method


def test_score_as_dict_has_the_contract_keys() -> None:
    assert set(stats.rtf([9]).as_dict()) == {"value", "n", "ci_low", "ci_high", "method"}


def test_the_interval_narrows_as_answers_accumulate() -> None:
    pattern = [10, 9, 8, 7, 3]
    small, large = stats.rtf(pattern * 4), stats.rtf(pattern * 400)
    assert small.value == pytest.approx(large.value)
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 5  # type: ignore[operator]


def test_counts_and_answers_give_the_same_score() -> None:
    rng = np.random.default_rng(7)
    answers = rng.integers(0, 11, 137)
    from_answers = stats.rtf(answers.tolist())
    from_counts = stats.rtf_score(int((answers >= 9).sum()), int((answers <= 6).sum()), 137)
    assert from_answers == from_counts


@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=300))
def test_rtf_lies_in_range_and_its_interval_holds_it(answers: list[int]) -> None:
    score = stats.rtf(answers)
    assert score.value is not None and score.ci_low is not None and score.ci_high is not None
    assert -100.0 <= score.ci_low <= score.value <= score.ci_high <= 100.0


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=300))
def test_excellence_lies_in_range_and_its_interval_holds_it(answers: list[int]) -> None:
    score = stats.excellence(answers)
    assert score.value is not None and score.ci_low is not None and score.ci_high is not None
    assert 0.0 <= score.ci_low <= score.value <= score.ci_high <= 100.0


def rtf_coverage(probs: tuple[float, float, float], n: int, seed: int) -> float:
    """Share of simulated samples whose interval holds the true RTF (promoter, passive, detractor probs)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, probs, size=REPLICATIONS)
    _, low, high = stats.rtf_from_counts(counts[:, 0], counts[:, 2], np.full(REPLICATIONS, n))
    truth = (probs[0] - probs[2]) * 100.0
    return float(((low <= truth) & (truth <= high)).mean())


@pytest.mark.parametrize("n", [10, 30, 100, 1000])
@pytest.mark.parametrize(
    "probs",
    [(0.60, 0.25, 0.15), (0.33, 0.34, 0.33), (0.10, 0.30, 0.60), (0.45, 0.45, 0.10), (0.80, 0.15, 0.05)],
    ids=["typical", "flat", "unhappy", "few-detractors", "delighted"],
)
def test_rtf_interval_covers_the_true_value_about_95_percent(
    probs: tuple[float, float, float], n: int
) -> None:
    coverage = rtf_coverage(probs, n, seed=n * 31 + int(probs[0] * 100))
    assert 0.93 <= coverage <= 0.97, coverage


def test_rtf_interval_does_not_collapse_on_a_tiny_unanimous_sample() -> None:
    # A plain Wald interval would be [100, 100] for 3 promoters out of 3: ours stays honest.
    score = stats.rtf([10, 10, 9])
    assert score.ci_low is not None and score.ci_low < 20.0


def excellence_coverage(p: float, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    k = rng.binomial(n, p, size=REPLICATIONS)
    _, low, high = stats.excellence_from_counts(k, np.full(REPLICATIONS, n))
    return float(((low <= p * 100) & (p * 100 <= high)).mean())


@pytest.mark.parametrize(
    ("p", "n"), [(0.2, 10), (0.35, 30), (0.35, 100), (0.5, 400), (0.15, 1000), (0.3, 2000)]
)
def test_excellence_interval_covers_the_true_value_about_95_percent(p: float, n: int) -> None:
    coverage = excellence_coverage(p, n, seed=int(p * 1000) + n)
    assert 0.93 <= coverage <= 0.97, coverage


@pytest.mark.parametrize("n", [5, 10, 20])
def test_excellence_coverage_averaged_over_true_rates_is_95_percent_even_for_tiny_samples(n: int) -> None:
    # At a small n the coverage of any interval for a binomial oscillates with p; Wilson's average is right.
    grid = np.linspace(0.05, 0.95, 19)
    average = float(np.mean([excellence_coverage(float(p), n, seed=int(p * 100) + n) for p in grid]))
    assert 0.93 <= average <= 0.97, average


def test_normal_cdf_matches_known_values() -> None:
    assert stats.normal_cdf(0.0) == pytest.approx(0.5)
    assert stats.normal_cdf(stats.Z95) == pytest.approx(0.975, abs=1e-9)
