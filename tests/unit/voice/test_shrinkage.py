"""Agents' scores shrunk toward their team, read as a specification: what the published scorecard
promises (coverage, P(above target) that can be trusted, no credit for a unanimous handful) is checked by
seeded simulation, so the same run always gives the same answer (docs/methods.md#shrinkage)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prevenance.voice import shrinkage, stats


def team_counts(sizes: list[int], seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agents whose true RTF differs a little (between-agent sd ~ 10 points)."""
    rng = np.random.default_rng(seed)
    promoters, detractors = [], []
    for n in sizes:
        p = float(np.clip(0.5 + rng.normal(0, 0.06), 0.05, 0.9))
        d = float(np.clip(0.2 - rng.normal(0, 0.03), 0.02, 0.5))
        counts = rng.multinomial(n, (p, 1 - p - d, d))
        promoters.append(counts[0])
        detractors.append(counts[2])
    return np.array(promoters), np.array(detractors), np.array(sizes)


def test_an_agent_with_few_answers_is_pulled_toward_the_team_harder_than_one_with_many() -> None:
    promoters, detractors, n = team_counts([200] * 20)
    # Two extra agents with the same raw RTF of 60 (no detractor), well above the team's ~30:
    # one with 5 answers, one with 500.
    promoters = np.append(promoters, [3, 300])
    detractors = np.append(detractors, [0, 0])
    n = np.append(n, [5, 500])
    shrunk = shrinkage.shrink_rtf(promoters, detractors, n)
    few, many = len(n) - 2, len(n) - 1
    raw = 60.0
    team = float(shrunk.prior_mean[few])
    assert team < 40.0
    assert team < shrunk.value[few] < shrunk.value[many] <= raw
    assert raw - shrunk.value[few] > 5 * (raw - shrunk.value[many])
    assert shrunk.weight[few] < 0.5 < shrunk.weight[many]
    # Its interval is a posterior one: narrower than the raw interval of 5 answers, and it holds the estimate.
    assert shrunk.ci_low[few] <= shrunk.value[few] <= shrunk.ci_high[few]
    _, raw_low, raw_high = stats.rtf_from_counts([5], [0], [5])
    assert shrunk.ci_high[few] - shrunk.ci_low[few] < raw_high[0] - raw_low[0]


def test_shrinkage_goes_toward_each_agents_own_team() -> None:
    good_p, good_d, good_n = team_counts([300] * 10, seed=2)
    bad_p, bad_d, bad_n = np.full(10, 60), np.full(10, 150), np.full(10, 300)
    promoters = np.concatenate([good_p, bad_p, [3], [3]])
    detractors = np.concatenate([good_d, bad_d, [1], [1]])
    n = np.concatenate([good_n, bad_n, [5], [5]])
    teams = ["good"] * 10 + ["bad"] * 10 + ["good", "bad"]
    shrunk = shrinkage.shrink_rtf(promoters, detractors, n, teams=teams)
    assert shrunk.value[-2] > shrunk.value[-1] + 20  # same raw answers, different teams


def test_identical_agents_show_little_between_agent_variance_and_all_get_the_team_mean() -> None:
    n = np.full(8, 100)
    shrunk = shrinkage.shrink_rtf(np.full(8, 50), np.full(8, 20), n)
    # tau^2 is a posterior mean: 8 identical agents make a large spread unlikely, not impossible.
    assert np.all(shrunk.tau2 < 0.05**2)
    assert np.allclose(shrunk.value, 30.0)
    assert np.all(shrunk.ci_high - shrunk.ci_low > 0)
    assert np.all(shrunk.weight < 0.2)


def test_p_above_target_falls_as_the_target_rises_and_rises_with_the_agents_score() -> None:
    promoters, detractors, n = team_counts([80] * 30, seed=3)
    targets = [0.0, 20.0, 30.0, 40.0, 60.0]
    above = [shrinkage.shrink_rtf(promoters, detractors, n, target=t).p_above_target for t in targets]
    assert all(a is not None for a in above)
    for lower, higher in itertools.pairwise(above):
        assert np.all(lower >= higher)  # type: ignore[operator]
    assert all(np.all((a >= 0) & (a <= 1)) for a in above if a is not None)


def test_p_above_target_rises_as_an_agents_passives_become_promoters() -> None:
    promoters, detractors, n = team_counts([80] * 30, seed=3)
    for margin, first, last in ((0.0, 0.25, 0.95), (shrinkage.TEAM_MEAN_MARGIN, 0.35, 0.85)):
        chances = []
        for k in range(0, 41, 4):
            shrunk = shrinkage.shrink_rtf(
                np.append(promoters, k),
                np.append(detractors, 5),
                np.append(n, 45),
                target=30.0,
                team_mean_margin=margin,
            )
            assert shrunk.p_above_target is not None
            chances.append(float(shrunk.p_above_target[-1]))
        assert chances == sorted(chances)
        # 40 passives and 5 detractors out of 45 (raw -11 against a team near 32): the sampling variance
        # is the team's, not the agent's own small one, so the evidence against it is honest, not
        # certain: 0.17 as a plain posterior probability, 0.31 read at the team mean's upper bound
        # (and 0.97 / 0.88 for 40 promoters, shrunk to 42 with a posterior sd of 8 points).
        assert chances[0] < first and chances[-1] > last


def test_no_target_gives_no_probability() -> None:
    promoters, detractors, n = team_counts([50] * 5)
    assert shrinkage.shrink_rtf(promoters, detractors, n).p_above_target is None


def test_shrunk_estimates_are_closer_to_the_truth_than_raw_scores_for_small_agents() -> None:
    rng = np.random.default_rng(11)
    agents = 400
    true_p = np.clip(0.55 + rng.normal(0, 0.05, agents), 0.05, 0.95)
    true_d = np.full(agents, 0.15)
    n = rng.integers(3, 40, agents)
    counts = np.array([rng.multinomial(k, (p, 1 - p - 0.15, 0.15)) for k, p in zip(n, true_p, strict=True)])
    truth = (true_p - true_d) * 100
    shrunk = shrinkage.shrink_rtf(counts[:, 0], counts[:, 2], n)
    raw, _, _ = stats.rtf_from_counts(counts[:, 0], counts[:, 2], n)
    assert np.mean((shrunk.value - truth) ** 2) < 0.5 * np.mean((raw - truth) ** 2)
    covered = (shrunk.ci_low <= truth) & (truth <= shrunk.ci_high)
    assert covered.mean() >= 0.90


def test_an_agent_without_recommend_answers_gets_the_team_prior() -> None:
    promoters, detractors, n = team_counts([100] * 6)
    shrunk = shrinkage.shrink_rtf(
        np.append(promoters, 0), np.append(detractors, 0), np.append(n, 0), target=0.0
    )
    assert shrunk.value[-1] == pytest.approx(shrunk.prior_mean[-1], abs=0.5)
    assert not math.isnan(shrunk.ci_low[-1])


agent_counts = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=25
)


@settings(derandomize=True, max_examples=300)
@given(agent_counts, st.floats(min_value=-100, max_value=100))
def test_a_shrunk_score_lies_between_the_agents_raw_score_and_the_team_mean(
    counts: list[tuple[int, int, int]], target: float
) -> None:
    promoters = np.array([c[0] for c in counts])
    passives = np.array([c[1] for c in counts])
    detractors = np.array([c[2] for c in counts])
    n = promoters + passives + detractors
    shrunk = shrinkage.shrink_rtf(promoters, detractors, n, target=target)
    assert shrunk.p_above_target is not None
    assert np.all((shrunk.p_above_target >= 0) & (shrunk.p_above_target <= 1))
    assert np.all((shrunk.weight >= 0) & (shrunk.weight <= 1))
    assert np.all((shrunk.ci_low <= shrunk.value + 1e-9) & (shrunk.value <= shrunk.ci_high + 1e-9))
    assert np.all((shrunk.value >= -100 - 1e-9) & (shrunk.value <= 100 + 1e-9))
    # An agent without answers gets the score of an unknown agent of the team: the team mean widened
    # by the between-agent spread, then truncated to [-100, 100], so it may sit off the team mean
    # toward 0. An agent with answers lies between its own score and the team mean it is pulled to;
    # with the between-agent spread uncertain that mean is itself a mixture, running from the pooled
    # mean (no spread) to the plain mean of the agents' scores (a wide spread).
    rated = n > 0
    raw = (promoters[rated] - detractors[rated]) / n[rated] * 100
    pooled = (promoters.sum() - detractors.sum()) / max(n.sum(), 1) * 100
    plain = raw.mean() if raw.size else pooled
    team_low = np.minimum(shrunk.prior_mean[rated], min(pooled, plain))
    team_high = np.maximum(shrunk.prior_mean[rated], max(pooled, plain))
    low = np.minimum(raw, team_low) - 1.0
    high = np.maximum(raw, team_high) + 1.0
    assert np.all((low <= shrunk.value[rated]) & (shrunk.value[rated] <= high))


# --- shrinkage: what the published scorecard promises, checked by seeded simulation -----------------


def test_a_unanimous_small_agent_is_pulled_toward_the_team_at_least_as_much_as_a_mixed_one() -> None:
    promoters, detractors, n = team_counts([25, 30, 18, 40, 12, 22, 35, 28], seed=5)
    # 6 of 6 promoters (raw 100) and a mixed 6 (4 promoters, 1 passive, 1 detractor: raw 50).
    shrunk = shrinkage.shrink_rtf(
        np.append(promoters, [6, 4]), np.append(detractors, [0, 1]), np.append(n, [6, 6])
    )
    unanimous, mixed = len(n), len(n) + 1
    # ``weight`` is the share of its own deviation from the team an agent keeps (a plain shrinkage
    # estimator let a unanimous agent keep 43 % of its raw score): unanimity must not buy precision.
    assert shrunk.weight[unanimous] <= shrunk.weight[mixed] + 1e-9
    assert shrunk.weight[unanimous] < 0.25
    # In points, the unanimous agent is pulled further (it is further from the team), and most of its
    # distance to the team is removed.
    team = shrunk.prior_mean[unanimous]
    assert 100.0 - shrunk.value[unanimous] >= 50.0 - shrunk.value[mixed]
    assert (100.0 - shrunk.value[unanimous]) / (100.0 - team) > 0.75
    # Its interval is not the narrow one of a "precise" unanimous sample.
    width = shrunk.ci_high - shrunk.ci_low
    assert width[unanimous] >= 0.9 * width[mixed]


def test_a_unanimous_small_agent_does_not_inflate_the_teams_between_agent_variance() -> None:
    promoters, detractors, n = team_counts([25, 30, 18, 40, 12, 22, 35, 28], seed=5)
    before = shrinkage.shrink_rtf(promoters, detractors, n).tau2[0]
    after = shrinkage.shrink_rtf(np.append(promoters, 6), np.append(detractors, 0), np.append(n, 6)).tau2[0]
    # Six answers carry the weight of six answers (the team's variance), not of a certainty.
    assert after < before + 0.05**2


def test_a_small_team_borrows_the_between_agent_variance_of_its_own_countrys_teams() -> None:
    rng = np.random.default_rng(21)
    promoters, detractors, n, teams, countries = [], [], [], [], []
    for country, spread in (("FR", 0.0), ("GB", 0.30)):
        for team in range(3):
            for _ in range(8):
                theta = float(np.clip(0.3 + spread * rng.standard_normal(), -0.7, 0.7))
                counts = rng.multinomial(60, ((0.75 + theta) / 2, 0.25, (0.75 - theta) / 2))
                promoters.append(counts[0])
                detractors.append(counts[2])
                n.append(60)
                teams.append(f"{country}-{team}")
                countries.append(country)
        # One small team of 2 agents per country, with identical answers in both countries.
        for p, d in ((30, 10), (20, 15)):
            promoters.append(p)
            detractors.append(d)
            n.append(60)
            teams.append(f"{country}-small")
            countries.append(country)
    shrunk = shrinkage.shrink_rtf(promoters, detractors, n, teams=teams, countries=countries, target=60.0)
    small_fr, small_gb = teams.index("FR-small"), teams.index("GB-small")
    assert shrunk.tau_source is not None
    assert shrunk.tau_source[small_fr] == shrunk.tau_source[small_gb] == "country"
    assert shrunk.tau_source[0] == "team"
    assert shrunk.tau2[small_gb] > 10 * shrunk.tau2[small_fr]
    # The same answers are shrunk hard where agents do not differ, little where they do.
    assert shrunk.weight[small_fr] < 0.3 < shrunk.weight[small_gb]


def _team_world(
    mean: float, sd: float, teams: int, seed: int, agents: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``teams`` independent teams of 8 agents with 3..39 answers each; true RTFs N(mean, sd) points.

    Each true RTF theta is turned into promoter/passive/detractor shares with 25% passives (fewer when
    |theta| > 75 points, so the shares stay valid). Drawn inside each test, never at collection time.
    """
    rng = np.random.default_rng(seed)
    theta = np.clip(mean / 100 + sd / 100 * rng.standard_normal(teams * agents), -0.97, 0.97)
    passives = np.minimum(0.25, 1 - np.abs(theta))
    p, d = (1 - passives + theta) / 2, (1 - passives - theta) / 2
    n = rng.integers(3, 40, teams * agents)
    promoters = rng.binomial(n, p)
    detractors = rng.binomial(n - promoters, np.clip(d / np.maximum(1 - p, 1e-12), 0, 1))
    return promoters, detractors, n, theta * 100


# 400 teams of 8 agents = 3,200 agents per scenario. Coverage of a 95% interval over 3,200 agents has a
# binomial SE of 0.004 (0.006 allowing a design effect of 2 for agents of one team sharing its estimated
# mean); the measured coverages are 0.95-0.99, so ">= 0.93" fails only on a real defect.
COVERAGE_TEAMS = 400
SCENARIOS = {
    "no true spread": (30.0, 0.0),
    "sd 10 points": (30.0, 10.0),
    "mean 65 sd 10": (65.0, 10.0),
}


def _shrink_each_team_alone(
    promoters: np.ndarray, detractors: np.ndarray, n: np.ndarray, target: float | None
) -> shrinkage.Shrunk:
    """One call for all the simulated teams, each in its own country: exactly as if each team were
    scored alone (no team borrows anything from another)."""
    teams = np.repeat(np.arange(n.size // 8), 8)
    return shrinkage.shrink_rtf(promoters, detractors, n, teams=teams, countries=teams, target=target)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_shrunk_intervals_cover_the_true_rtf_in_teams_of_8_agents(scenario: str) -> None:
    mean, sd = SCENARIOS[scenario]
    promoters, detractors, n, truth = _team_world(mean, sd, COVERAGE_TEAMS, seed=101)
    shrunk = _shrink_each_team_alone(promoters, detractors, n, None)
    covered = (shrunk.ci_low <= truth) & (truth <= shrunk.ci_high)
    assert covered.mean() >= 0.93
    raw, _, _ = stats.rtf_from_counts(promoters, detractors, n)
    assert np.mean((shrunk.value - truth) ** 2) < np.mean((raw - truth) ** 2)


# The pay target (60) and a target 10 points below the team mean. Among the agents stated
# P(above) >= 0.9 the share truly above must be >= 0.85; with 190-830 agents stated (seeds 202-505, P
# read at the team mean's one-sided bounds), its binomial SE is 0.01-0.02, and the measured shares are
# 0.92-1.00. The minimum counts say the rule still states agents (about a third of what the plain
# posterior stated: 273 where it stated 500+ at "mean 65, target 60").
CALIBRATION_CASES = [
    ("no true spread", 60.0, 0),
    ("no true spread", 20.0, 120),
    ("sd 10 points", 60.0, 0),
    ("sd 10 points", 20.0, 150),
    ("mean 65 sd 10", 60.0, 150),
    ("mean 65 sd 10", 55.0, 400),
]


@pytest.mark.parametrize(("scenario", "target", "min_stated"), CALIBRATION_CASES)
def test_agents_stated_at_least_90_percent_likely_above_target_are_truly_above(
    scenario: str, target: float, min_stated: int
) -> None:
    mean, sd = SCENARIOS[scenario]
    promoters, detractors, n, truth = _team_world(mean, sd, COVERAGE_TEAMS, seed=202)
    shrunk = _shrink_each_team_alone(promoters, detractors, n, target)
    assert shrunk.p_above_target is not None
    stated = shrunk.p_above_target >= 0.9
    assert stated.sum() >= min_stated
    if min_stated == 0:
        # The target is far above every agent: nobody may be stated likely above it.
        assert stated.sum() <= 2
    else:
        assert (truth[stated] > target).mean() >= 0.85


# A target at the team's true mean, or 5 points above it at mean 65: 2,000 teams (16,000 agents), since
# only 1-3% of the agents are then stated and the statements cluster by team. Measured over seeds
# 202-606: 0.865-0.905 (sd 10, target 30; 240-300 stated), 0.90-0.92 (mean 65, target 65; 480-570),
# 0.87-0.93 (mean 65, target 70; 110-140). Before P was read at the team mean's bounds: 0.81, 0.83, 0.78.
NEAR_TARGET_TEAMS = 2000
NEAR_TARGET_CASES = [
    ("sd 10 points", 30.0, 150),
    ("mean 65 sd 10", 65.0, 300),
    ("mean 65 sd 10", 70.0, 60),
]


@pytest.mark.parametrize(("scenario", "target", "min_stated"), NEAR_TARGET_CASES)
def test_stated_90_percent_above_a_target_at_the_team_mean_is_85_percent_right(
    scenario: str, target: float, min_stated: int
) -> None:
    mean, sd = SCENARIOS[scenario]
    promoters, detractors, n, truth = _team_world(mean, sd, NEAR_TARGET_TEAMS, seed=303)
    shrunk = _shrink_each_team_alone(promoters, detractors, n, target)
    assert shrunk.p_above_target is not None
    stated = shrunk.p_above_target >= 0.9
    assert stated.sum() >= min_stated
    assert (truth[stated] > target).mean() >= 0.85


def test_p_above_target_is_read_at_the_team_means_bounds_so_it_is_never_more_decided() -> None:
    promoters, detractors, n, _ = _team_world(30.0, 10.0, 50, seed=7)
    teams = np.repeat(np.arange(50), 8)
    plain = shrinkage.shrink_rtf(promoters, detractors, n, teams=teams, target=35.0, team_mean_margin=0.0)
    honest = shrinkage.shrink_rtf(promoters, detractors, n, teams=teams, target=35.0)
    assert plain.p_above_target is not None and honest.p_above_target is not None
    # Never further from 0.5 than the plain posterior probability, on the same side of it (or at 0.5).
    assert np.all(np.abs(honest.p_above_target - 0.5) <= np.abs(plain.p_above_target - 0.5) + 1e-9)
    assert np.all((honest.p_above_target - 0.5) * (plain.p_above_target - 0.5) >= -1e-12)
    # The estimate and its interval do not change.
    np.testing.assert_allclose(honest.value, plain.value)
    np.testing.assert_allclose(honest.ci_low, plain.ci_low)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "not attainable from one team's data: with the target 5 points above the true team mean (sd 10), "
        "reading P at the team mean's one-sided 95% bounds lifts the share truly above from 0.70 to "
        "0.78-0.92 over seeds 202-606 of 2,000 teams (0.80 here, 86 of 16,000 agents stated; pooled "
        "0.83), not to 0.85: the remaining statements come from lucky agents in teams whose estimated "
        "mean overshoots the true one by 2-4 of its standard errors (with the true tau plugged in: "
        "0.83; with the true tau and team mean: 0.91). See docs/methods.md#shrinkage."
    ),
)
def test_stated_90_percent_above_a_target_just_above_the_team_mean_is_85_percent_right() -> None:
    promoters, detractors, n, truth = _team_world(30.0, 10.0, NEAR_TARGET_TEAMS, seed=303)
    shrunk = _shrink_each_team_alone(promoters, detractors, n, 35.0)
    assert shrunk.p_above_target is not None
    stated = shrunk.p_above_target >= 0.9
    assert stated.sum() >= 30
    assert (truth[stated] > 35.0).mean() >= 0.85


def test_excellence_is_shrunk_toward_the_team_like_the_rtf() -> None:
    top = np.array([10, 12, 8, 11, 9, 10, 6, 0])
    n = np.array([20, 25, 18, 22, 19, 21, 6, 6])
    shrunk = shrinkage.shrink_excellence(top, n, target=50.0)
    raw = 100 * top / n
    assert shrunk.p_above_target is not None
    assert shrunk.value[6] < raw[6] and shrunk.value[7] > raw[7]  # 6/6 and 0/6 both pulled in
    assert np.all((shrunk.ci_low >= 0) & (shrunk.ci_high <= 100))
    assert np.all((shrunk.ci_low <= shrunk.value) & (shrunk.value <= shrunk.ci_high))
