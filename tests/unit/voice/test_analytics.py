"""Scores by dimension and the monthly agent scorecard, on synthetic answers frames (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from prevenance.voice import analytics, stats

GRID: dict[str, Any] = {
    "target_rtf": 40,
    "min_answers": 30,
    "bands": [
        {"name": "A", "min_shrunk_rtf": 60, "min_fcr": 0.8},
        {"name": "B", "min_shrunk_rtf": 40},
        {"name": "C", "min_shrunk_rtf": -100},
    ],
}


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """An answers frame from partial rows (the rest filled with plausible values)."""
    t0 = datetime(2026, 7, 1, 9, tzinfo=UTC)
    full = []
    for i, row in enumerate(rows):
        full.append(
            {
                "answer_id": f"ans-{i}",
                "contact_id": f"c-{i}",
                "member_id": i + 1,
                "agent": "alice",
                "team": "paris",
                "channel": "phone",
                "reason": "lost_card",
                "product": "gold",
                "country": "FR",
                "month": "2026-07",
                "answered_at": t0 + timedelta(minutes=i),
                "recommend": 9,
                "interaction": 5,
                "language": "fr",
            }
            | row
        )
    return pl.DataFrame(full, schema=analytics.ANSWER_SCHEMA)


def synthetic(answers: int, agents: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    quality = rng.normal(0, 0.8, agents)
    who = rng.integers(0, agents, answers)
    latent = 7.5 + quality[who] + rng.normal(0, 1.8, answers)
    recommend = np.clip(np.rint(latent), 0, 10)
    missing = rng.random(answers) < 0.05
    interaction = np.clip(np.rint((latent - 2) / 1.6), 1, 5)
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "answer_id": [f"a{i}" for i in range(answers)],
            "contact_id": [f"c{i}" for i in range(answers)],
            "member_id": rng.integers(1, 1000, answers),
            "agent": [f"agent-{a:03d}" for a in who],
            "team": [f"team-{a % 3}" for a in who],
            "channel": np.array(["phone", "email", "chat"])[rng.integers(0, 3, answers)],
            "reason": np.array(["lost_card", "points"])[rng.integers(0, 2, answers)],
            "product": "gold",
            "country": np.array(["FR", "GB"])[rng.integers(0, 2, answers)],
            "month": np.array(["2026-07", "2026-08"])[rng.integers(0, 2, answers)],
            "answered_at": [t0 + timedelta(minutes=int(i)) for i in range(answers)],
            "recommend": [None if m else int(r) for r, m in zip(recommend, missing, strict=True)],
            "interaction": interaction.astype(int),
            "language": "fr",
        },
        schema=analytics.ANSWER_SCHEMA,
    )


def test_empty_answers_has_the_contract_schema() -> None:
    empty = analytics.empty_answers()
    assert empty.height == 0
    assert dict(empty.schema) == analytics.ANSWER_SCHEMA
    assert analytics.ANSWER_SCHEMA["recommend"] == pl.Int8


@pytest.mark.parametrize("by", ["team", "channel", "reason", "country", "product", "month", "agent"])
def test_scores_by_match_the_per_answer_formulas_for_every_dimension(by: str) -> None:
    answers = synthetic(3000, 12)
    rows = analytics.scores_by(answers, by)
    keys = [r["key"] for r in rows]
    assert keys == sorted(answers[by].unique().to_list())
    for row in rows:
        subset = answers.filter(pl.col(by) == row["key"])
        assert row["n"] == subset.height
        assert row["rtf"] == stats.rtf(subset["recommend"].to_list()).as_dict()
        assert row["excellence"] == stats.excellence(subset["interaction"].to_list()).as_dict()


def test_scores_by_agent_add_team_shrunk_rtf_and_probability_above_target() -> None:
    answers = synthetic(3000, 12)
    with_target = analytics.scores_by(answers, "agent", target_rtf=40)
    without = analytics.scores_by(answers, "agent")
    for row in with_target:
        assert row["team"].startswith("team-")
        assert set(row["rtf_shrunk"]) == {"value", "n", "ci_low", "ci_high", "method"}
        assert row["rtf_shrunk"]["ci_low"] <= row["rtf_shrunk"]["value"] <= row["rtf_shrunk"]["ci_high"]
        assert 0.0 <= row["p_above_target"] <= 1.0
    assert all(r["p_above_target"] is None for r in without)


def test_an_agent_is_scored_with_the_team_of_their_latest_answer() -> None:
    answers = frame([{"team": "lyon"}, {"team": "lyon"}, {"team": "paris"}])
    assert analytics.scores_by(answers, "agent")[0]["team"] == "paris"


def test_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        analytics.scores_by(analytics.empty_answers(), "colour")


def test_scores_by_on_no_answers_is_an_empty_list() -> None:
    assert analytics.scores_by(analytics.empty_answers(), "agent") == []
    assert analytics.scores_by(analytics.empty_answers(), "team") == []


def test_an_answer_without_recommend_still_counts_for_excellence() -> None:
    rows = analytics.scores_by(
        frame([{"recommend": None, "interaction": 5}, {"recommend": 3, "interaction": 4}]), "team"
    )
    assert rows[0]["n"] == 2
    assert rows[0]["rtf"]["n"] == 1 and rows[0]["rtf"]["value"] == -100.0
    assert rows[0]["excellence"]["n"] == 2 and rows[0]["excellence"]["value"] == 50.0


# --- scorecards ---------------------------------------------------------------------------------------


def scorecard_answers() -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    # star: 60 answers, 50 promoters, 10 passives -> raw 83.3
    rows += [{"agent": "star", "recommend": 10}] * 50 + [{"agent": "star", "recommend": 8}] * 10
    # solid: 60 answers, 36 promoters, 18 passives, 6 detractors -> raw 50
    rows += [{"agent": "solid", "recommend": 9}] * 36 + [{"agent": "solid", "recommend": 7}] * 18
    rows += [{"agent": "solid", "recommend": 2, "interaction": 2}] * 6
    # weak: 60 answers, 12 promoters, 24 passives, 24 detractors -> raw -20
    rows += [{"agent": "weak", "recommend": 9}] * 12 + [{"agent": "weak", "recommend": 7}] * 24
    rows += [{"agent": "weak", "recommend": 0, "interaction": 1}] * 24
    # newbie: 4 answers, all promoters
    rows += [{"agent": "newbie", "recommend": 10}] * 4
    # another month, must be ignored when month is given
    rows += [{"agent": "weak", "recommend": 10, "month": "2026-06"}] * 100
    return frame(rows)


def fcr_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "agent": ["star", "star", "solid", "weak"],
            "fcr_resolved": [40, 45, 30, 10],
            "fcr_n": [50, 50, 50, 50],
        }
    )


def test_scorecard_has_exactly_the_contract_columns() -> None:
    cards = analytics.agent_scorecards(scorecard_answers(), fcr_frame(), GRID, month="2026-07")
    assert cards.columns == list(analytics.SCORECARD_COLUMNS)
    assert cards["target_met"].dtype == pl.Boolean
    assert cards["payout_band"].dtype == pl.String


def test_scorecard_applies_the_payout_grid_on_the_shrunk_rtf_and_fcr() -> None:
    cards = analytics.agent_scorecards(scorecard_answers(), fcr_frame(), GRID, month="2026-07")
    by_agent = {row["agent"]: row for row in cards.iter_rows(named=True)}
    assert set(by_agent) == {"newbie", "solid", "star", "weak"}
    star, solid, weak, newbie = by_agent["star"], by_agent["solid"], by_agent["weak"], by_agent["newbie"]
    assert star["n"] == 60 and star["rtf"] == pytest.approx(250 / 3)
    assert star["fcr_n"] == 100 and star["fcr_rate"] == pytest.approx(0.85)
    assert weak["n"] == 60 and weak["rtf"] == pytest.approx(-20.0)  # June excluded
    # Shrinkage pulls every agent toward the team but keeps their order.
    assert star["rtf_shrunk"] < star["rtf"] and weak["rtf_shrunk"] > weak["rtf"]
    assert star["rtf_shrunk"] > solid["rtf_shrunk"] > weak["rtf_shrunk"]
    for row in (star, solid, weak):
        assert row["rtf_shrunk_ci_low"] <= row["rtf_shrunk"] <= row["rtf_shrunk_ci_high"]
        assert row["rtf_ci_low"] <= row["rtf"] <= row["rtf_ci_high"]
        assert row["excellence_ci_low"] <= row["excellence"] <= row["excellence_ci_high"]
        assert row["target_met"] == (row["rtf_shrunk"] >= 40)
        assert 0 <= row["p_above_target"] <= 1
    assert star["payout_band"] == ("A" if star["rtf_shrunk"] >= 60 else "B")
    assert weak["payout_band"] == "C"
    assert newbie["payout_band"] == "insufficient-data" and newbie["target_met"] is False
    assert newbie["fcr_n"] == 0 and newbie["fcr_rate"] is None


def test_a_band_needing_fcr_is_not_given_without_fcr_data() -> None:
    grid = {
        "target_rtf": 0,
        "min_answers": 1,
        "bands": [{"name": "A", "min_shrunk_rtf": -100, "min_fcr": 0.5}],
    }
    cards = analytics.agent_scorecards(frame([{"recommend": 10}] * 5), None, grid)
    assert cards["payout_band"].to_list() == ["none"]
    assert cards["fcr_rate"].to_list() == [None]


def test_first_matching_band_wins_in_the_grid_order() -> None:
    grid = {
        "min_answers": 1,
        "bands": [{"name": "low", "min_shrunk_rtf": -100}, {"name": "high", "min_shrunk_rtf": 50}],
    }
    cards = analytics.agent_scorecards(frame([{"recommend": 10}] * 40), None, grid)
    assert cards["payout_band"].to_list() == ["low"]
    assert cards["target_met"].to_list() == [False]  # no target configured
    assert cards["p_above_target"].to_list() == [None]


def test_scorecards_of_no_answers_is_an_empty_frame_with_the_columns() -> None:
    cards = analytics.agent_scorecards(analytics.empty_answers(), None, GRID)
    assert cards.height == 0 and cards.columns == list(analytics.SCORECARD_COLUMNS)


def test_vectorised_scorecards_agree_with_the_per_answer_formulas() -> None:
    answers = synthetic(5000, 40, seed=4).filter(pl.col("month") == "2026-07")
    cards = analytics.agent_scorecards(answers, None, GRID)
    for row in cards.iter_rows(named=True):
        subset = answers.filter(pl.col("agent") == row["agent"])
        expected = stats.rtf(subset["recommend"].to_list())
        assert row["n"] == expected.n
        assert row["rtf"] == pytest.approx(expected.value)
        assert row["rtf_ci_low"] == pytest.approx(expected.ci_low)
        assert row["excellence"] == pytest.approx(stats.excellence(subset["interaction"].to_list()).value)


def test_scorecard_says_for_each_agent_whether_the_evidence_is_enough_to_pay_on() -> None:
    cards = analytics.agent_scorecards(scorecard_answers(), fcr_frame(), GRID, month="2026-07")
    by_agent = {row["agent"]: row for row in cards.iter_rows(named=True)}
    assert set(cards["evidence"].to_list()) <= set(analytics.EVIDENCE_VALUES)
    assert by_agent["newbie"]["evidence"] == "insufficient-data"  # 4 answers < min_answers
    for name in ("star", "solid", "weak"):
        row = by_agent[name]
        decided = row["p_above_target"] >= 0.9 or row["p_above_target"] <= 0.1
        assert row["evidence"] == ("sufficient" if decided else "inconclusive")
    # A stricter grid asks for more certainty: nobody gains evidence by it.
    strict = analytics.agent_scorecards(
        scorecard_answers(), fcr_frame(), GRID | {"evidence_probability": 0.999}, month="2026-07"
    )
    assert strict["evidence"].to_list().count("sufficient") <= cards["evidence"].to_list().count("sufficient")


def test_a_band_can_require_the_shrunk_excellence_rate_as_well_as_the_rtf() -> None:
    rows: list[dict[str, Any]] = []
    # Same RTF (all promoters), different excellence: "polite" rates the interaction 4, "excellent" 5.
    rows += [{"agent": "excellent", "recommend": 10, "interaction": 5}] * 40
    rows += [{"agent": "polite", "recommend": 10, "interaction": 4}] * 40
    rows += [{"agent": "third", "recommend": 10, "interaction": 5}] * 20
    rows += [{"agent": "third", "recommend": 10, "interaction": 4}] * 20
    grid = {
        "target_rtf": 50,
        "min_answers": 30,
        "bands": [
            {"name": "A", "min_shrunk_rtf": 50, "min_shrunk_excellence": 60},
            {"name": "B", "min_shrunk_rtf": 50},
        ],
    }
    cards = analytics.agent_scorecards(frame(rows), None, grid)
    by_agent = {row["agent"]: row for row in cards.iter_rows(named=True)}
    assert by_agent["excellent"]["payout_band"] == "A"
    assert by_agent["polite"]["payout_band"] == "B"
    for row in by_agent.values():
        assert row["excellence_shrunk_ci_low"] <= row["excellence_shrunk"] <= row["excellence_shrunk_ci_high"]
    # Shrunk toward the team: the 100% agent is pulled down, the 0% one up.
    assert by_agent["excellent"]["excellence_shrunk"] < 100.0 < by_agent["excellent"]["excellence"] + 1e-9
    assert by_agent["polite"]["excellence_shrunk"] > 0.0


def test_the_shipped_grid_pays_on_both_the_rtf_and_the_excellence_rate() -> None:
    import json
    from pathlib import Path

    from prevenance.voice import service

    shipped = json.loads(Path(service.__file__).with_name("voice_config.json").read_text())
    for band in shipped["payout_grid"]["bands"]:
        assert band.get("min_shrunk_rtf") is not None
        assert band.get("min_shrunk_excellence") is not None


def test_scores_by_agent_carry_the_shrunk_excellence_rate() -> None:
    rows = analytics.scores_by(synthetic(3000, 12, seed=9), "agent", target_rtf=40.0)
    for row in rows:
        exc = row["excellence_shrunk"]
        assert set(exc) == {"value", "n", "ci_low", "ci_high", "method"}
        assert exc["ci_low"] <= exc["value"] <= exc["ci_high"]
