"""The voice demo: answers for the desk's contacts with each country's planted answer style,
deterministic and idempotent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.demo.voice import load_voice_demo
from prevenance.desk import service as desk
from prevenance.voice import report, service
from prevenance.voice.tables import Answer, Barometer, Invitation
from tests.conftest import member_body

NOW = datetime(2026, 4, 1, tzinfo=UTC)


def _contacts(engine: Engine, clock: FrozenClock, per_country: int) -> None:
    rng = random.Random(3)
    with unit_of_work(engine) as session:
        for country, language in (("FR", "fr"), ("GB", "en")):
            for i in range(20):
                data = customers.MemberData(**member_body(country=country, language=language))
                customers.upsert(session, ref=f"{country}{i}", data=data, now=clock.now())
            for i in range(per_country):
                at = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 80))
                contact = desk.ContactInput(
                    id=f"{country}-C{i}",
                    member_ref=f"{country}{i % 20}",
                    channel="phone",
                    direction="inbound",
                    agent=f"agent-{i % 6}",  # the same six agents serve both countries
                    team="t1",
                    reason="rewards.balance",
                    started_at=at,
                    ended_at=at,
                    notes="",
                    outcome="resolved",
                )
                desk.log_contact(session, contact=contact, now=at)


def test_demo_answers_carry_the_planted_country_styles_and_reload_adds_nothing(
    engine: Engine, clock: FrozenClock
) -> None:
    _contacts(engine, clock, per_country=1000)
    seen: list[tuple[int, int]] = []
    counts = load_voice_demo(engine, seed=7, now=NOW, progress=lambda done, total: seen.append((done, total)))
    assert counts["invitations"] == 2000 and seen[-1] == (2000, 2000)
    assert 700 < counts["answers"] < 900  # 40 % answer
    assert counts["barometers"] > 0
    with read_session(engine) as session:
        used = session.scalar(select(func.count()).where(Invitation.answered_at.is_not(None)))
        assert used == counts["answers"] == session.scalar(select(func.count()).select_from(Answer))
        assert session.scalar(select(func.count()).where(Invitation.status != "sent")) == 0
        means: dict[str, float] = dict(
            session.execute(select(Answer.country, func.avg(Answer.recommend)).group_by(Answer.country)).all()
        )
        comparison = service.country_comparison(session, quarter="2026Q1")
        data = service.report_data(session, quarter="2026Q1", language="en", now=NOW)
    # One set of calibrated figures: the quarterly report shows exactly what the API (and the
    # executive screen, which reads country_comparison) shows, with the method named.
    built = report.build_context(data)
    shown = {r["country"]: (r["calibrated"], r["method"]) for r in built["sections"]["countries"]["rows"]}
    assert shown == {c["country"]: (c["calibrated"], c["method"]) for c in comparison["countries"]}
    assert "equipercentile" in report.render_html(data)
    # Same agents, same experience: GB answers about 1.5 points higher than FR.
    assert 0.8 < float(means["GB"]) - float(means["FR"]) < 2.2
    countries = {c["country"]: c for c in comparison["countries"]}
    raw_gap = countries["GB"]["raw"]["value"] - countries["FR"]["raw"]["value"]
    calibrated_gap = countries["GB"]["calibrated"]["value"] - countries["FR"]["calibrated"]["value"]
    assert raw_gap > 15 and abs(calibrated_gap) < raw_gap / 2
    # 1,000 contacts a country at a 40 % answer rate, one comparable stratum: GB is estimated.
    assert countries["GB"]["method_code"] == "estimated" and countries["FR"]["method_code"] == "reference"

    again = load_voice_demo(engine, seed=7, now=NOW)
    assert again == {"invitations": 0, "answers": 0, "suggestions": 0, "barometers": 0}
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Barometer)) == counts["barometers"]
