"""The NumPy logistic regression and its AUC: recovers a planted signal, reports n and a CI."""

from __future__ import annotations

import numpy as np
import pytest

from prevenance.offers import propensity as model
from prevenance.offers.features import FEATURES, feature_vector
from prevenance.offers.rules import LogisticModel


def test_the_fit_recovers_planted_coefficients() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20_000, 3)) * [1.0, 2.0, 0.5] + [0, 1, 0]
    true = np.array([1.5, -0.5, 0.0])
    logits = -1.0 + ((x - x.mean(axis=0)) / x.std(axis=0)) @ true
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logits))).astype(float)
    intercept, weights, means, _scales = model.fit_logistic(x, y, l2=0.1)
    assert intercept == pytest.approx(-1.0, abs=0.06)
    assert weights == pytest.approx(true, abs=0.06)
    assert means == pytest.approx(x.mean(axis=0))


def test_auc_is_one_for_a_perfect_ranking_half_for_noise_with_a_ci_around_it() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    perfect = model.auc_with_ci(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), labels)
    assert perfect["value"] == 1.0 and perfect["n"] == 6 and perfect["positives"] == 3
    rng = np.random.default_rng(1)
    noise = model.auc_with_ci(rng.random(4000), (rng.random(4000) < 0.3).astype(float))
    assert noise["ci_low"] < 0.5 < noise["ci_high"]
    ties = model.auc_with_ci(np.zeros(10), np.array([0, 1] * 5, dtype=float))
    assert ties["value"] == 0.5
    assert model.auc_with_ci(np.zeros(3), np.zeros(3))["value"] is None


def test_features_are_finite_and_in_order() -> None:
    vector = feature_vector(
        recency_days=None,
        transactions_90d=0,
        spend_90d=0,
        partner_spend_90d=0,
        category_spend_90d=0,
        benefits_used_90d=0,
    )
    assert len(vector) == len(FEATURES) and all(np.isfinite(vector))
    active = feature_vector(
        recency_days=2,
        transactions_90d=10,
        spend_90d=500,
        partner_spend_90d=100,
        category_spend_90d=200,
        benefits_used_90d=1,
    )
    assert active[FEATURES.index("partner_share_90d")] == pytest.approx(0.2)
    assert active[0] < vector[0]  # more recent, smaller recency


def test_scoring_matches_numpy() -> None:
    fitted = LogisticModel(
        version=1,
        features=("a", "b"),
        intercept=-0.3,
        weights=(0.8, -1.2),
        means=(1.0, 2.0),
        scales=(2.0, 0.5),
    )
    x = [3.0, 1.5]
    z = -0.3 + 0.8 * (3 - 1) / 2 - 1.2 * (1.5 - 2) / 0.5
    assert fitted.score(x) == pytest.approx(1 / (1 + np.exp(-z)))
