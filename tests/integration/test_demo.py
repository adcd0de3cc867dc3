"""The demo data: deterministic, loaded through the services, a sound ledger, and a rerun adds nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.demo.generator import DemoMismatch, load_demo
from prevenance.demo.plan import plan
from prevenance.loyalty.tables import CardTransaction, Posting, Redemption, Referral, Refund

MEMBERS = 40
SEED = 3


def _counts(engine: Engine) -> dict[str, object]:
    with read_session(engine) as session:

        def count(model: type) -> int:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())

        return {
            "postings": count(Posting),
            "members": count(Member),
            "transactions": count(CardTransaction),
            "refunds": count(Refund),
            "referrals": count(Referral),
            "redemptions": count(Redemption),
            "countries": set(session.scalars(select(Member.country).distinct())),
            "products": set(session.scalars(select(Member.product).distinct())),
            "languages": dict(session.execute(select(Member.country, Member.language).distinct()).all()),
            "kinds": set(session.scalars(select(Redemption.kind).distinct())),
            "statuses": set(session.scalars(select(Redemption.status).distinct())),
            "reasons": set(session.scalars(select(Posting.reason).distinct())),
            "currencies": set(session.scalars(select(CardTransaction.currency).distinct())),
            "referrals_rewarded": int(
                session.execute(
                    select(func.count()).select_from(Referral).where(Referral.status == "rewarded")
                ).scalar_one()
            ),
        }


def _story(members: int, seed: int) -> tuple[object, ...]:
    story = plan(members=members, seed=seed)
    return story.people, story.referrals, [(e.at, e.seq, e.kind, e.data) for e in story.events]


def test_the_plan_is_deterministic() -> None:
    first = _story(30, 5)
    assert first == _story(30, 5)
    assert first != _story(30, 6)


def test_demo_loads_every_kind_with_a_sound_ledger_and_reloads_to_nothing(engine: Engine) -> None:
    summary = load_demo(engine, members=MEMBERS, seed=SEED)
    assert summary["ok"] == 1
    assert summary["members"] == MEMBERS
    assert summary["postings_added"] == summary["postings"] > 0

    counts = _counts(engine)
    assert counts["members"] == MEMBERS
    assert counts["transactions"] == summary["transactions"] + summary["offers_uplift_transactions"] > MEMBERS
    assert counts["refunds"] == summary["refunds"] > 0
    assert counts["countries"] == {"FR", "GB", "DE", "IT", "ES"}
    assert counts["products"] == {"green", "gold", "platinum", "centurion", "cobrand-airline"}
    languages = counts["languages"]
    assert isinstance(languages, dict)
    assert languages["FR"] == "fr" and {languages[c] for c in ("GB", "DE", "IT", "ES")} == {"en"}
    assert counts["kinds"] == {"catalogue", "ecode", "transfer", "travel"}
    assert {"confirmed", "voided"} <= counts["statuses"]  # type: ignore[operator]
    assert {"earn", "refund", "referral", "travel_hold", "travel_confirm", "travel_void"} <= counts["reasons"]  # type: ignore[operator]
    assert {"EUR", "GBP"} <= counts["currencies"]  # type: ignore[operator]
    assert counts["referrals"] == summary["referrals"] > 0
    assert counts["referrals_rewarded"] == counts["referrals"]  # every referee then transacted

    again = load_demo(engine, members=MEMBERS, seed=SEED)
    assert again["ok"] == 1
    assert again["postings_added"] == 0
    assert _counts(engine) == counts
    assert again["replayed"] == summary["transactions"] + summary["refunds"] + summary["redemptions"]

    with pytest.raises(DemoMismatch):  # the same seed at another size would reuse ids for other bodies
        load_demo(engine, members=MEMBERS + 1, seed=SEED)
