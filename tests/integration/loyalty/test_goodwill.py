"""Goodwill: an emergency card delivered after its promise earns the member points (reason
``goodwill``, reference = the order) or, where the programme says customers prefer cash, a statement
credit; once per order under re-delivered events, capped per member and month, told by mail in the
member's language (the communications log), and counted in ``GET /v1/goodwill``."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import goodwill_rules, programme
from prevenance.loyalty.tables import GoodwillGrant, Posting
from prevenance.maintenance import run_once
from prevenance.settings import get_settings
from prevenance.wiring import on_card_delivered
from tests.conftest import Api
from tests.factories import put_member
from tests.integration.offers.conftest import member_headers
from tests.integration.voice.conftest import smtp as smtp
from tests.smtp_server import Smtp


def install_goodwill(engine: Engine, clock: FrozenClock, section: dict[str, Any]) -> None:
    with unit_of_work(engine) as session:
        document = programme.current_document(session)
        assert document is not None
        programme.install(session, document={**document[1], "goodwill": section}, now=clock.now(), by="test")


def late_card(api: Api, clock: FrozenClock, order_id: str, member_ref: str, city: str = "Paris") -> None:
    body = {"id": order_id, "city": city, "country": "FR", "address": "1 rue de Rivoli"}
    assert api.post(f"/v1/members/{member_ref}/card-replacements", body, role="agent").status_code == 201
    api.post(f"/v1/card-replacements/{order_id}/dispatch", role="integrator")
    clock.advance(timedelta(hours=3))  # Paris promises two hours
    assert api.post(f"/v1/card-replacements/{order_id}/deliver", role="integrator").status_code == 200


def grants(engine: Engine) -> list[GoodwillGrant]:
    with read_session(engine) as session:
        return list(session.scalars(select(GoodwillGrant).order_by(GoodwillGrant.id)))


def test_a_late_card_earns_points_once_and_the_member_is_told(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    put_member(api, "M1")  # French, FR, gold
    put_member(api, "M2", language="en")
    late_card(api, clock, "R1", "M1")
    body = {"id": "R2", "city": "Paris", "country": "FR", "address": "2 rue de Rivoli"}
    api.post("/v1/members/M2/card-replacements", body, role="agent")
    api.post("/v1/card-replacements/R2/deliver", role="integrator")  # on time: nothing
    run_once(engine, clock)
    run_once(engine, clock, smtp_url=smtp.url)  # the goodwill.granted event queues the mail, sent
    [grant] = grants(engine)
    assert (grant.cause, grant.reference, grant.form, grant.points) == ("late_card", "R1", "points", 2500)
    with read_session(engine) as session:
        postings = session.execute(
            select(Posting.reason, Posting.reference, Posting.amount).where(Posting.reason == "goodwill")
        ).all()
    assert postings == [("goodwill", "R1", 2500)]
    movements = api.get("/v1/members/M1/movements", role="agent")
    assert movements.status_code == 200
    assert any(m["reason"] == "goodwill" and m["reference"] == "R1" for m in movements.json()["items"])
    [message] = smtp.inbox.take()
    assert message["To"] == "camille@example.fr"
    assert message["Subject"] == "Votre carte de remplacement est arrivée en retard"
    assert "2500 points" in message.get_content()
    log = api.get("/v1/members/M1/communications", role="agent").json()["items"]
    assert [(c["template"], c["language"], c["source"]) for c in log] == [
        ("goodwill-late_card", "fr", "goodwill-relay")
    ]
    assert "2500 points" in log[0]["summary"] and "retard" in log[0]["subject"]

    staff = api.get("/v1/members/M1/360", role="agent").json()
    assert [(g["cause"], g["reference"], g["points"], g["cost_eur"]) for g in staff["goodwill"]] == [
        ("late_card", "R1", 2500, "16.2500")
    ]
    own = api.client.get("/v1/members/M1/360", headers=member_headers(engine, clock, "M1")).json()
    assert own["view"] == "member" and own["goodwill"][0]["points"] == 2500
    assert "cost_eur" not in own["goodwill"][0] and "recovery_cases" not in own

    # The event delivered again (a relay crashed after handling it): nothing more.
    with unit_of_work(engine) as session:
        for event in session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "card_replacement.delivered")
        ):
            on_card_delivered(session, event)
    run_once(engine, clock, smtp_url=smtp.url)
    run_once(engine, clock, smtp_url=smtp.url)
    assert len(grants(engine)) == 1 and smtp.inbox.take() == []
    assert len(api.get("/v1/members/M1/communications", role="agent").json()["items"]) == 1

    report = api.get("/v1/goodwill?month=2026-01", role="supervisor")
    assert report.status_code == 200, report.text
    figures = report.json()
    assert (figures["count"], figures["points"], figures["cost_eur"]) == (1, 2500, "16.25")
    assert figures["by_reason"] == [
        {
            "key": "late_card",
            "count": 1,
            "capped": 0,
            "points": 2500,
            "credit_eur": "0.00",
            "cost_eur": "16.25",
        }
    ]
    assert [row["key"] for row in figures["by_country"]] == ["FR"]
    assert [row["key"] for row in figures["by_team"]] == ["emergency-cards"]
    assert api.get("/v1/goodwill?month=2026-1", role="supervisor").status_code == 422
    assert api.get("/v1/goodwill?month=2026-01", role="agent").status_code == 403


def test_statement_credit_where_cash_is_preferred_and_the_monthly_cap(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_goodwill(
        engine,
        clock,
        {
            "monthly_cap_eur": "25.00",
            "causes": {"late_card": {"points": 2500, "credit_eur": "15.00"}},
            "statement_credit": [{"country": "DE", "products": ["gold"]}],
        },
    )
    put_member(api, "D1", country="DE", language="en")
    put_member(api, "F1")
    for n in range(3):
        late_card(api, clock, f"RD{n}", "D1", city="Berlin" if False else "Paris")
    late_card(api, clock, "RF1", "F1")
    run_once(engine, clock)
    run_once(engine, clock, smtp_url=smtp.url)
    by_member = [(g.reference, g.form, g.points, g.credit_minor) for g in grants(engine)]
    # 15 €, then the 10 € left under the 25 € cap, then nothing: recorded as capped.
    assert sorted(by_member) == [
        ("RD0", "credit", 0, 1500),
        ("RD1", "credit", 0, 1000),
        ("RD2", "capped", 0, 0),
        ("RF1", "points", 2500, 0),
    ]
    mails = smtp.inbox.take()
    assert sorted(str(m["Subject"]) for m in mails).count("Your replacement card arrived late") == 2
    assert len(mails) == 3  # D1's two credits (the capped grant tells nothing) and F1's points
    log = api.get("/v1/members/D1/communications", role="agent").json()["items"]
    assert len(log) == 2 and all(c["language"] == "en" for c in log)
    assert any("€15.00" in c["summary"] for c in log)
    figures = api.get("/v1/goodwill?month=2026-01", role="supervisor").json()
    assert (figures["count"], figures["capped"], figures["credit_eur"]) == (3, 1, "25.00")
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        printed = CliRunner().invoke(cli, ["loyalty", "goodwill", "report", "--month", "2026-01", "--json"])
        text = CliRunner().invoke(cli, ["loyalty", "goodwill", "report", "--month", "2026-01"])
        refused = CliRunner().invoke(cli, ["loyalty", "goodwill", "report", "--month", "0001-01"])
    finally:
        get_settings.cache_clear()
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == figures  # the API's figures, from the command line
    assert text.exit_code == 0 and "count=3 capped=1" in text.output and "DE" in text.output
    assert refused.exit_code == 2


def test_the_goodwill_section_is_checked() -> None:
    policy = goodwill_rules.parse(None)
    assert policy.causes["late_card"].points == 2500
    assert (
        goodwill_rules.decide(
            policy, cause="incident", country="FR", product="gold", spent_this_month_eur=Decimal("49.99")
        ).points
        == 1
    )  # 0.01 € left buys one point at 0.0065 €
    for bad, field in (
        ({"cap": 1}, "goodwill.cap"),
        ({"causes": {"flood": {"points": 1}}}, "goodwill.causes.flood"),
        ({"causes": {"incident": {"points": -1}}}, "goodwill.causes.incident.points"),
        ({"eur_per_point": "0"}, "goodwill.eur_per_point"),
        ({"statement_credit": [{"country": "germany"}]}, "goodwill.statement_credit[0].country"),
    ):
        try:
            goodwill_rules.parse(bad)
        except goodwill_rules.GoodwillError as error:
            assert error.field == field
        else:
            raise AssertionError(bad)


def test_put_programme_refuses_a_bad_goodwill_section(api: Api) -> None:
    document = api.get("/v1/programme").json()
    document = document.get("document", document)
    response = api.put("/v1/programme", {**document, "goodwill": {"monthly_cap_eur": "lots"}})
    assert response.status_code == 422, response.text
    assert "goodwill.monthly_cap_eur" in response.text


def test_concurrent_grants_grant_once_and_hold_the_cap(api: Api, engine: Engine, clock: FrozenClock) -> None:
    from prevenance.customers import service as customers
    from prevenance.db import run_in_transaction
    from prevenance.loyalty import goodwill
    from tests.races import race

    install_goodwill(engine, clock, {"monthly_cap_eur": "20.00", "causes": {"incident": {"points": 2000}}})
    put_member(api, "M1")
    with read_session(engine) as session:
        member = customers.find_member(session, ref="M1")
        assert member is not None
        member_id = member.id

    def grant(reference: str) -> Any:
        return run_in_transaction(
            engine,
            lambda s: goodwill.grant(
                s,
                member_id=member_id,
                cause="incident",
                reference=reference,
                team=None,
                by="t",
                now=clock.now(),
            ),
        )

    same = race(4, lambda _: grant("INC-SAME"))
    assert all(isinstance(r, dict) for r in same), same
    assert sorted(r["replayed"] for r in same) == [False, True, True, True]
    others = race(4, lambda i: grant(f"INC-{i}"))
    assert all(isinstance(r, dict) for r in others), others
    rows = grants(engine)
    assert len(rows) == 5
    # 2000 points cost 13 €: the first fits, the next gets what 7 € buy, then the cap is reached.
    assert sum(Decimal(g.cost_eur) for g in rows) <= Decimal("20.00")
    assert sorted(g.form for g in rows).count("capped") == 3
    with read_session(engine) as session:
        count = session.scalar(select(func.count()).select_from(Posting).where(Posting.reason == "goodwill"))
    assert count == 2


def test_a_crash_after_the_goodwill_mail_left_resends_it_once_with_the_same_message_id(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reaction writes (the grant, the mail queued) and sends: a process dying between the
    relay's send and its mark sends again on restart, with the same Message-ID (the member's mail
    client shows one message), and the communications log holds it once."""
    from prevenance.desk import goodwill_mail

    put_member(api, "M1")
    late_card(api, clock, "R1", "M1")
    run_once(engine, clock)  # the grant
    run_once(engine, clock)  # its event queues the mail; nothing sent without a relay

    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the process died before marking the mail sent")

    with monkeypatch.context() as patch:
        patch.setattr(goodwill_mail.mail, "mark_rows_sent", crash)
        with pytest.raises(RuntimeError):
            goodwill_mail.send_pending(engine, smtp_url=smtp.url, now=clock.now())
    first = smtp.inbox.take()
    assert len(first) == 1
    assert api.get("/v1/members/M1/communications", role="agent").json()["items"] == []
    assert goodwill_mail.send_pending(engine, smtp_url=smtp.url, now=clock.now()) == 1
    second = smtp.inbox.take()
    assert [m["Message-ID"] for m in second] == [first[0]["Message-ID"]]
    assert len(api.get("/v1/members/M1/communications", role="agent").json()["items"]) == 1
    assert goodwill_mail.send_pending(engine, smtp_url=smtp.url, now=clock.now()) == 0
    assert len(grants(engine)) == 1
