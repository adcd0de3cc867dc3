"""The desk demo: a year of contacts on every channel and many reasons, a computable FCR report,
deterministic, and a rerun adds nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.demo.desk_plan import plan_desk
from prevenance.demo.generator import DemoMismatch, load_demo
from prevenance.demo.plan import plan
from prevenance.desk import service as desk
from prevenance.desk.chat.tables import ChatConversation, ChatMessage
from prevenance.desk.mail_in import reads as mail_reads
from prevenance.desk.mail_in import relay as mail_relay
from prevenance.desk.tables import (
    BenefitExplanation,
    BenefitUsage,
    CardReplacement,
    Case,
    Communication,
    ConciergePartner,
    ConciergeRequest,
    Contact,
    ContactPreference,
    Incident,
    IncidentNotice,
)

MEMBERS = 40
SEED = 3
SCALE = 0.0005  # 2.5 contacts and 0.35 concierge requests a day


def _counts(engine: Engine) -> dict[str, int]:
    with read_session(engine) as session:
        return {
            model.__name__: int(session.execute(select(func.count()).select_from(model)).scalar_one())
            for model in (
                Contact,
                Case,
                CardReplacement,
                Communication,
                ContactPreference,
                ConciergeRequest,
                Incident,
                IncidentNotice,
                BenefitUsage,
                BenefitExplanation,
            )
        }


def test_the_desk_plan_is_deterministic() -> None:
    people = plan(members=30, seed=5).people

    def events(seed: int) -> list[tuple[object, ...]]:
        return [(e.before, e.kind, e.data) for e in plan_desk(people, seed=seed, scale=SCALE)]

    assert events(5) == events(5)
    assert events(5) != events(6)


def test_desk_demo_loads_contacts_on_channels_and_reasons_and_reloads_to_nothing(engine: Engine) -> None:
    summary = load_demo(engine, members=MEMBERS, seed=SEED, desk_scale=SCALE)
    assert summary["ok"] == 1
    counts = _counts(engine)
    assert counts["Contact"] == summary["contacts"] + summary["mail_contacts"] > 300
    assert summary["mail_messages"] == 7 and summary["mail_contacts"] == 8  # 3 answers among them
    assert counts["Communication"] >= summary["communications"] > 0  # and the goodwill mails
    assert counts["CardReplacement"] == summary["card_replacements"] + summary["late_cards"]
    assert counts["Case"] < counts["Contact"]  # some cases took several contacts

    with read_session(engine) as session:
        channels = set(session.scalars(select(Contact.channel).distinct()))
        reasons = set(session.scalars(select(Contact.reason).distinct()))
        kinds = set(session.scalars(select(Communication.kind).distinct()))
        assert mail_reads.count_triage(session) == 1  # one unknown sender waits; the other was linked
        assert len(mail_reads.list_messages(session, state="ignored")["items"]) == 1  # the auto-reply
        assert mail_relay.count_pending(session) == 4 + 3  # 4 threads acknowledged, 3 answers
        last = session.execute(select(func.max(Contact.started_at))).scalar_one()
        assert {"phone", "email", "chat"} <= channels and len(channels) >= 4
        assert len(reasons) >= 8 and reasons <= {r["code"] for r in desk.list_reasons()}
        assert {"statement", "marketing"} <= kinds
        month = (last - timedelta(days=40)).strftime("%Y-%m")
        report = desk.fcr_report(session, by="channel", month=month, now=last)
        overall = report["overall"]
        assert overall["n"] > 0 and 0.5 < overall["value"] < 0.95
        reasons_report = desk.reason_report(session, month=month)
        assert reasons_report["month"] == month
        # Concierge requests: premium members, in their city, solved through a partner of the directory.
        requests = session.scalars(select(ConciergeRequest)).all()
        assert len(requests) == summary["concierge_requests"] > 0
        premium = set(session.scalars(select(Member.id).where(Member.product.in_(["platinum", "centurion"]))))
        assert {r.member_id for r in requests} <= premium
        directory = set(session.scalars(select(ConciergePartner.code)))
        solved = [r for r in requests if r.status == "solved"]
        assert solved and all(r.partner in directory for r in solved)
        assert all(r.city for r in requests)
        # Incidents: one resolved in Lyon, one active; every member has a home city.
        incidents = {i.id.rsplit("-", 1)[-1]: i for i in session.scalars(select(Incident))}
        assert summary["incidents"] == 2
        assert (incidents["lyon"].status, incidents["now"].status) == ("resolved", "active")
        assert session.execute(select(func.count()).where(Member.city.is_(None))).scalar_one() == 0
        # Benefits used month by month, some explained first.
        assert counts["BenefitUsage"] == summary["benefit_usages"] > 0
        assert counts["BenefitExplanation"] == summary["benefits_explained"]
        # A chat opened by the active incident, taken and answered by the demo agent.
        assert summary["chat_chats"] == 1
        [opened] = session.scalars(select(ChatConversation)).all()
        assert (opened.moment_kind, opened.moment_ref, opened.status) == (
            "incident",
            incidents["now"].id,
            "active",
        )
        assert opened.last_seq == 2

    again = load_demo(engine, members=MEMBERS, seed=SEED, desk_scale=SCALE)
    assert again["ok"] == 1
    assert _counts(engine) == counts
    with read_session(engine) as session:  # the chat again: no second chat, no message twice
        assert session.execute(select(func.count()).select_from(ChatMessage)).scalar_one() == 2
    assert (
        again["desk_replayed"]
        == summary["contacts"] + summary["card_replacements"] + summary["communications"]
    )

    with pytest.raises(DemoMismatch):  # another scale would add a second, different year on top
        load_demo(engine, members=MEMBERS, seed=SEED, desk_scale=SCALE * 2)


def test_the_demo_channels_behave_as_the_sources_describe() -> None:
    """Chat, the phone and call-backs settle an urgent matter faster than e-mail, which settles
    fewer matters at the first contact: the routing then learns what the product's sources say."""
    from statistics import median

    people = plan(members=200, seed=SEED).people
    matters: dict[str, list[dict[str, object]]] = {}
    for event in plan_desk(people, seed=SEED, scale=0.01):
        if event.kind == "contact" and event.data["reason"] in {"card.lost_stolen", "card.declined"}:
            matters.setdefault(str(event.data["matter"]), []).append(event.data)
    hours: dict[str, list[float]] = {}
    first_resolved: dict[str, list[bool]] = {}
    for contacts in matters.values():
        contacts.sort(key=lambda c: -float(c["started"]))  # seconds before the anchor: oldest first
        first, last = contacts[0], contacts[-1]
        channel = str(first["channel"])
        first_resolved.setdefault(channel, []).append(first["outcome"] == "resolved")
        if last["outcome"] == "resolved":
            took = (float(first["started"]) - float(last["ended"])) / 3_600
            hours.setdefault(channel, []).append(took)
            if any(c["direction"] == "outbound" for c in contacts):
                hours.setdefault("callback", []).append(took)
    assert min(len(hours[c]) for c in ("chat", "phone", "email", "callback")) >= 10, {
        c: len(v) for c, v in hours.items()
    }
    assert median(hours["chat"]) < median(hours["email"])
    assert median(hours["phone"]) < median(hours["email"])
    assert median(hours["callback"]) < median(
        [h for h in hours["email"] if h > 1]
    )  # e-mails not settled at once
    share = {c: sum(v) / len(v) for c, v in first_resolved.items()}
    assert share["chat"] > share["email"] and share["phone"] > share["email"]


def test_the_demo_recovers_detractors_compensates_a_late_card_and_an_incident(engine: Engine) -> None:
    from prevenance.desk import recovery
    from prevenance.desk.tables import RecoveryCase
    from prevenance.loyalty.tables import GoodwillGrant
    from prevenance.offers.tables import OfferSuppression

    summary = load_demo(engine, members=MEMBERS, seed=SEED, desk_scale=SCALE)
    assert summary["ok"] == 1
    assert summary["recovery_cases"] >= summary["recovery_closed"] > 0
    assert summary["late_cards"] == 1
    with read_session(engine) as session:
        outcomes = set(session.scalars(select(RecoveryCase.outcome).where(RecoveryCase.outcome.is_not(None))))
        assert {"called_back", "resolved"} <= outcomes
        causes = dict(
            session.execute(select(GoodwillGrant.cause, func.count()).group_by(GoodwillGrant.cause)).all()
        )
        assert causes.get("late_card", 0) >= 1  # the desk year's late cards and the planted one
        assert causes.get("incident", 0) == summary["incident_goodwill"] > 0
        month = session.scalar(select(func.max(RecoveryCase.opened_at)))
        assert month is not None
        report = recovery.report(session, month=(month - timedelta(days=40)).strftime("%Y-%m"))
        assert report["recovery_rate"]["n"] >= 0
        suppressed = session.scalar(select(func.count()).select_from(OfferSuppression))
    assert suppressed is not None
