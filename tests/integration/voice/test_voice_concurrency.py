"""Races: a survey link submitted twice at once records one answer; one month published by two
supervisors at once gives one version; one contact's event handled twice gives one invitation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.maintenance import HANDLERS
from prevenance.voice import invitations, rules, service
from prevenance.voice.errors import SurveyLinkError
from prevenance.voice.tables import Answer, Invitation, ScorecardVersion
from tests.conftest import Api
from tests.integration.voice.conftest import add_member, log_contact
from tests.races import race as shared_race

WORKERS = 6


def race(action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` on WORKERS threads released together; returns results or exceptions."""
    return shared_race(WORKERS, action)


def _count(engine: Engine, model: type) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_one_answer_per_link_under_concurrent_submissions(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    log_contact(api, "C1", "M1")
    with unit_of_work(engine) as session:
        for event in session.scalars(select(OutboxEvent)):
            for handler in HANDLERS.get(event.type, []):
                handler(session, event)
    invitation_id = invitations.invitation_id_for("C1")

    def submit(i: int) -> dict[str, Any]:
        form = rules.AnswerForm(recommend=i, interaction=None, comment=None, suggestion=None)
        return run_in_transaction(
            engine,
            lambda s: service.submit_answer(
                s, invitation_id=invitation_id, form=form, language="fr", now=clock.now()
            ),
        )

    results = race(submit)
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, SurveyLinkError)]
    assert len(winners) == 1 and len(losers) == WORKERS - 1, results
    assert all(error.kind == "used" for error in losers)
    assert _count(engine, Answer) == 1
    with read_session(engine) as session:
        assert session.scalars(select(Answer.recommend)).one() == winners[0]["recommend"]


def test_one_invitation_per_contact_when_the_event_is_handled_twice_at_once(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    log_contact(api, "C1", "M1")
    with read_session(engine) as session:
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "contact.closed")).one()

    def handle(_: int) -> None:
        run_in_transaction(engine, lambda s: invitations.on_contact_closed(s, event))

    assert all(r is None for r in race(handle))
    assert _count(engine, Invitation) == 1


def test_one_version_when_a_month_is_published_twice_at_once(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    rows = [
        {
            "id": f"P{i}",
            "member_ref": "M1",
            "answered_at": "2026-01-10T10:00:00Z",
            "agent": f"a{i % 2}",
            "team": "t",
            "channel": "phone",
            "reason": "rewards.balance",
            "recommend": str(i % 11),
        }
        for i in range(20)
    ]
    run_in_transaction(engine, lambda s: service.import_answers(s, rows=rows, now=clock.now()))
    clock.current = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=1)

    def publish(i: int) -> int:
        outcome = run_in_transaction(
            engine,
            lambda s: service.publish_scorecard(
                s, month="2026-01", by=f"sup{i}", reason="close", now=clock.now()
            ),
        )
        return int(outcome.body["version"])

    assert race(publish) == [1] * WORKERS
    assert _count(engine, ScorecardVersion) == 1
