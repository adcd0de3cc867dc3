"""Ids and caller keys at their documented maximum (200 characters) are taken like any other, never
a 500: the keys the product derives from them (``earn:<id>``, ``refund:<id>``,
``redemption:<id>``, ``referral:<id>``, ``<month>/<key>``) are longer than the 200-character key
columns, which PostgreSQL enforces and SQLite does not. A derived key that would not fit is stored
as its head and a digest of the whole (``common.idempotency.fit_key``)."""

from __future__ import annotations

from typing import Any

from prevenance.common.idempotency import KEY_MAX, fit_key
from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"
LONGEST = 200


def _audit_ok(api: Api) -> None:
    assert api.get("/v1/ledger/audit", role="admin").json()["ok"] is True


def _movements(api: Api, ref: str) -> list[dict[str, Any]]:
    return list(api.get(f"/v1/members/{ref}/movements", params={"limit": 500}).json()["items"])


def test_an_earn_a_refund_and_a_redemption_under_the_longest_ids(api: Api) -> None:
    assert api.put("/v1/members/M1", member_body()).status_code == 201
    tx_id, refund_id, redemption_id = "t" * LONGEST, "r" * LONGEST, "d" * LONGEST
    earned = api.post("/v1/transactions", tx_body(tx_id, "M1", "5000.00"), role="integrator")
    assert earned.status_code == 201, earned.text
    replay = api.post("/v1/transactions", tx_body(tx_id, "M1", "5000.00"), role="integrator")
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    refund = api.post(
        f"/v1/transactions/{tx_id}/refunds", {"id": refund_id, "amount": "1000.00"}, role="integrator"
    )
    assert refund.status_code == 201, refund.text
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 1500, "stock": 10}, role="marketing")
    body = {"id": redemption_id, "kind": "catalogue", "sku": "MUG", "quantity": 1}
    redeemed = api.post("/v1/members/M1/redemptions", body, role="agent")
    assert redeemed.status_code == 201, redeemed.text
    assert api.post("/v1/members/M1/redemptions", body, role="agent").json() == redeemed.json()
    assert [(m["reason"], m["reference"]) for m in _movements(api, "M1")] == [
        ("redemption_catalogue", redemption_id),
        ("refund", tx_id),
        ("earn", tx_id),
    ]
    _audit_ok(api)


def test_a_referral_under_the_longest_key_rewards_the_referrer_at_the_first_earn(api: Api) -> None:
    for ref in ("A", "B"):
        assert api.put(f"/v1/members/{ref}", member_body()).status_code == 201
    key = "k" * LONGEST
    body = {"referrer_ref": "A", "referee_ref": "B"}
    first = api.post("/v1/referrals", body, role="agent", headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = api.post("/v1/referrals", body, role="agent", headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()
    earned = api.post("/v1/transactions", tx_body("T1", "B", "10.00"), role="integrator")
    assert earned.status_code == 201, earned.text
    assert [m["reason"] for m in _movements(api, "A")] == ["referral"]
    _audit_ok(api)


def test_a_scorecard_publish_under_the_longest_key_is_answered_like_any_other(api: Api) -> None:
    publish = {"by": "Claire (supervisor)", "reason": "monthly close"}
    response = api.post(
        "/v1/voice/scorecards/2026-02/publish",
        publish,
        role="supervisor",
        headers={"Idempotency-Key": "k" * LONGEST},
    )
    assert response.status_code == 409, response.text  # no answers that month, as without a key
    assert response.headers["content-type"].startswith(PROBLEM)


def test_a_key_that_fits_is_kept_and_one_that_does_not_is_cut_to_a_unique_digest() -> None:
    assert fit_key("earn:" + "t" * 195) == "earn:" + "t" * 195  # unchanged: keys stored before stay valid
    long_a, long_b = fit_key("earn:" + "t" * 200), fit_key("earn:" + "t" * 199 + "u")
    assert len(long_a) == len(long_b) == KEY_MAX and long_a != long_b
    assert long_a.startswith("earn:ttt") and fit_key("earn:" + "t" * 200) == long_a
