"""The offer catalogue: idempotent upsert, 422 naming the field, pause/resume/end, roles."""

from __future__ import annotations

from tests.conftest import Api
from tests.integration.offers.conftest import offer_def

PROBLEM = "application/problem+json"


def test_put_creates_then_repeats_without_change_then_replaces(api: Api) -> None:
    created = api.put("/v1/offers/spring-books", offer_def(), role="marketing")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "active" and body["holdout_share"] == "0.10" and body["spent_points"] == 0
    assert body["reward"] == {"points": 100, "min_spend_eur": "0"}
    again = api.put("/v1/offers/spring-books", offer_def(), role="marketing")
    assert again.status_code == 200 and again.json()["updated_at"] == body["updated_at"]
    changed = api.put("/v1/offers/spring-books", offer_def(reward={"points": 250}), role="marketing")
    assert changed.status_code == 200 and changed.json()["reward"]["points"] == 250
    listed = api.get("/v1/offers", role="supervisor").json()
    assert [o["id"] for o in listed] == ["spring-books"]
    one = api.get("/v1/offers/spring-books", role="agent").json()
    assert one["reward"]["points"] == 250 and one["decisions"] == {}


def test_invalid_definitions_are_refused_naming_the_field_and_write_nothing(api: Api) -> None:
    cases = [
        (offer_def(reward={}), "reward.points"),
        (offer_def(reward={"points": 10, "colour": "red"}), "reward.colour"),
        (
            offer_def(reward_kind="category_multiplier", reward={"category": "travel", "multiplier": "1"}),
            "reward.multiplier",
        ),
        (offer_def(reward_kind="ecode", reward={"points": 5}), "reward.sku"),
        (offer_def(holdout_share="0.95"), "holdout_share"),
        (offer_def(margin_rate="abc"), "margin_rate"),
        (offer_def(valid_until="2025-11-01T00:00:00Z"), "valid_until"),
        (offer_def(eligibility={"segments": ["sleepy"]}), "eligibility.segments"),
        (offer_def(eligibility={"tier": ["gold"]}), "eligibility.tier"),
        (offer_def(title_fr="  "), "title_fr"),
        (offer_def(reward_kind="cashback"), "reward_kind"),
    ]
    for body, field in cases:
        response = api.put("/v1/offers/bad", body, role="marketing")
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["field"] == field, response.json()
    assert api.get("/v1/offers/bad").status_code == 404
    assert api.get("/v1/offers").json() == []


def test_pause_resume_end_and_an_ended_offer_stays_ended(api: Api) -> None:
    api.put("/v1/offers/o1", offer_def(), role="marketing")
    assert api.post("/v1/offers/o1/pause", role="marketing").json()["status"] == "paused"
    assert api.post("/v1/offers/o1/pause", role="marketing").json()["status"] == "paused"
    assert api.get("/v1/offers?status=paused").json()[0]["id"] == "o1"
    assert api.post("/v1/offers/o1/resume", role="marketing").json()["status"] == "active"
    assert api.post("/v1/offers/o1/end", role="marketing").json()["status"] == "ended"
    refused = api.post("/v1/offers/o1/resume", role="marketing")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/offer-ended")
    assert api.put("/v1/offers/o1", offer_def(reward={"points": 5}), role="marketing").status_code == 409
    assert api.post("/v1/offers/nope/pause", role="marketing").status_code == 404


def test_roles(api: Api) -> None:
    assert api.put("/v1/offers/o1", offer_def(), role="agent").status_code == 403
    assert api.put("/v1/offers/o1", offer_def(), role="integrator").status_code == 403
    assert api.put("/v1/offers/o1", offer_def(), role="admin").status_code == 201
    assert api.get("/v1/offers", role="integrator").status_code == 403
    assert api.post("/v1/offers/o1/end", role="agent").status_code == 403
