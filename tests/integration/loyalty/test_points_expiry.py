"""Points expiry as a policy of the programme, on SQLite and PostgreSQL: none by default, N months
after the earn (first in first out) or N months of inactivity; holds, refunds, re-runs, racing runs,
the warning mail once, the CLI, and the programme refusing keys it does not know."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner, Result

from prevenance.cli import app as cli_app
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.common.problems import InvalidInput
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import expiry, ledger, service
from prevenance.loyalty.errors import InsufficientPoints
from prevenance.loyalty.tables import ExpiredLot, ExpiryWarning, Posting
from prevenance.maintenance import Maintenance, run_once
from prevenance.settings import get_settings
from tests.conftest import Api
from tests.factories import store_member
from tests.races import race
from tests.smtp_server import running_smtp

PROBLEM = "application/problem+json"


# --- helpers --------------------------------------------------------------------------------------


def set_policy(api: Api, policy: dict[str, Any] | None) -> None:
    document = copy.deepcopy(api.get("/v1/programme").json()["document"])
    if policy is None:
        document.pop("points_expiry", None)
    else:
        document["points_expiry"] = policy
    response = api.put("/v1/programme", document)
    assert response.status_code == 200, response.text


def earn(engine: Engine, clock: FrozenClock, tx_id: str, ref: str, euros: int) -> int:
    """Earn ``euros`` points (gold: one point per euro) now; returns the earn posting's id."""
    tx = service.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount=f"{euros}.00",
        currency="EUR",
        merchant="Galeries",
        category="books",
        occurred_at=clock.now(),
    )
    outcome = run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))
    assert outcome.status_code == 201, outcome.body
    with read_session(engine) as s:
        return int(s.scalar(select(Posting.id).where(Posting.reference == tx_id, Posting.reason == "earn")))


def hold(engine: Engine, clock: FrozenClock, ref: str, hold_id: str, points: int) -> None:
    request = {"id": hold_id, "kind": "travel", "booking_ref": "PNR", "amount": "5000.00", "points": points}
    outcome = run_in_transaction(
        engine, lambda s: service.redeem(s, member_ref=ref, request=request, now=clock.now())
    )
    assert outcome.body["status"] == "held", outcome.body


def resolve(engine: Engine, clock: FrozenClock, hold_id: str, action: str) -> None:
    run_in_transaction(
        engine, lambda s: service.resolve_hold(s, redemption_id=hold_id, action=action, now=clock.now())
    )


def points(engine: Engine, ref: str) -> int:
    with read_session(engine) as s:
        return int(service.get_balance(s, member_ref=ref)["points"])


def run(engine: Engine, clock: FrozenClock, as_of: date | None = None) -> expiry.RunReport:
    return service.expire(engine, as_of=as_of or clock.now().date(), now=clock.now())


def expired_lots(engine: Engine) -> list[tuple[int, int]]:
    with read_session(engine) as s:
        rows = s.execute(
            select(ExpiredLot.earn_posting_id, ExpiredLot.points).order_by(
                ExpiredLot.expiry_posting_id, ExpiredLot.earn_posting_id
            )
        ).all()
    return [(int(a), int(b)) for a, b in rows]


def expiry_postings(engine: Engine) -> list[int]:
    with read_session(engine) as s:
        return [
            int(a)
            for a in s.scalars(select(Posting.amount).where(Posting.reason == "expiry").order_by(Posting.id))
        ]


def audit_ok(engine: Engine) -> None:
    with read_session(engine) as s:
        report = ledger.audit(s)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def months_later(clock: FrozenClock, start: date, months: int, days: int = 0) -> None:
    """Move the clock to ``start`` + months (+ days), at noon."""
    from prevenance.loyalty.expiry_rules import add_months

    target = add_months(start, months) + timedelta(days=days)
    clock.current = clock.current.replace(year=target.year, month=target.month, day=target.day, hour=12)


# --- the programme's keys -------------------------------------------------------------------------


def test_unknown_programme_keys_are_refused_naming_the_key(api: Api) -> None:
    before = api.get("/v1/programme").json()
    document = copy.deepcopy(before["document"])
    for extra, field in [
        ({"points_expiry_months": 36}, "points_expiry_months"),
        ({"points_expiry": {"months": 36}}, "points_expiry.kind"),
        ({"points_expiry": {"kind": "after_earn", "months": 36, "grace": 1}}, "points_expiry.grace"),
        ({"travel": {"euro_per_point": "0.01", "hold_minutes": 30, "fee": 1}}, "travel.fee"),
    ]:
        response = api.put("/v1/programme", {**document, **extra})
        assert response.status_code == 422, (extra, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["field"] == field
        assert field.split(".")[-1] in response.json()["detail"]
    bad_product = copy.deepcopy(document)
    bad_product["products"]["gold"]["cashback"] = 1
    assert api.put("/v1/programme", bad_product).json()["field"] == "products.gold.cashback"
    # Nothing was stored by the refusals.
    assert api.get("/v1/programme").json() == before
    accepted = {
        **document,
        "points_expiry": {"kind": "after_earn", "months": 36},
        "goodwill": {"monthly_cap_eur": "50.00"},
    }
    response = api.put("/v1/programme", accepted)
    assert response.status_code == 200, response.text
    assert response.json()["document"]["points_expiry"] == {"kind": "after_earn", "months": 36}


# --- the policies -------------------------------------------------------------------------------------


def test_the_default_policy_never_expires_a_point(api: Api, engine: Engine, clock: FrozenClock) -> None:
    store_member(engine, clock, "N1")
    earn(engine, clock, "T1", "N1", 500)
    clock.advance(timedelta(days=3650))
    report = run(engine, clock)
    assert report.policy == "none" and report.points_expired == 0 and report.warnings == 0
    assert points(engine, "N1") == 500
    assert expiry_postings(engine) == []


def test_after_earn_expires_the_oldest_lots_first(api: Api, engine: Engine, clock: FrozenClock) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "F1")
    start = clock.now().date()
    earn(engine, clock, "T1", "F1", 100)
    months_later(clock, start, 6)
    second = earn(engine, clock, "T2", "F1", 50)
    months_later(clock, start, 7)
    hold(engine, clock, "F1", "H1", 120)
    resolve(engine, clock, "H1", "confirm")  # 120 spent: all of the first lot, 20 of the second
    months_later(clock, start, 12)
    assert run(engine, clock).points_expired == 0  # the first lot was spent
    months_later(clock, start, 18)
    report = run(engine, clock)
    assert report.points_expired == 30 and report.members_expired == 1
    assert expired_lots(engine) == [(second, 30)]
    assert points(engine, "F1") == 0
    audit_ok(engine)
    # The same day again changes nothing; nor does a later day (nothing is left).
    again = run(engine, clock)
    assert again.points_expired == 0 and again.skipped_already_run == 0  # no points: not a candidate
    months_later(clock, start, 30)
    assert run(engine, clock).points_expired == 0
    assert expiry_postings(engine) == [30]
    with read_session(engine) as s:
        events = list(s.scalars(select(OutboxEvent.payload).where(OutboxEvent.type == "points.expired")))
    assert [e["points"] for e in events] == [30] and events[0]["member_ref"] == "F1"


def test_a_rerun_for_the_same_day_is_a_no_op(api: Api, engine: Engine, clock: FrozenClock) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "R1")
    start = clock.now().date()
    earn(engine, clock, "T1", "R1", 100)
    months_later(clock, start, 6)
    earn(engine, clock, "T2", "R1", 40)
    months_later(clock, start, 12)
    assert run(engine, clock).points_expired == 100
    again = run(engine, clock)
    assert again.points_expired == 0 and again.skipped_already_run == 1
    assert expiry_postings(engine) == [100] and points(engine, "R1") == 40
    # In one transaction too (the service's single-session form).
    same = run_in_transaction(
        engine, lambda s: expiry.expire_in_session(s, as_of=clock.now().date(), now=clock.now())
    )
    assert same.points_expired == 0 and same.skipped_already_run == 1


def test_inactivity_expires_everything_after_months_without_activity(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    set_policy(api, {"kind": "inactivity", "months": 6})
    store_member(engine, clock, "I1")
    store_member(engine, clock, "I2")
    start = clock.now().date()
    earn(engine, clock, "T1", "I1", 100)
    earn(engine, clock, "T2", "I2", 70)
    months_later(clock, start, 2)
    earn(engine, clock, "T3", "I1", 30)  # I1 is active; I2 is not
    months_later(clock, start, 6)
    report = run(engine, clock)
    assert report.points_expired == 70 and points(engine, "I2") == 0 and points(engine, "I1") == 130
    months_later(clock, start, 8, days=-1)
    assert run(engine, clock).points_expired == 0
    months_later(clock, start, 8)
    assert run(engine, clock).points_expired == 130
    assert points(engine, "I1") == 0
    audit_ok(engine)


def test_held_points_do_not_expire_until_released_to_their_own_lots(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "H1")
    start = clock.now().date()
    first = earn(engine, clock, "T1", "H1", 100)
    months_later(clock, start, 11)
    hold(engine, clock, "H1", "TRIP", 60)  # 60 of the first lot go to escrow
    months_later(clock, start, 12)
    assert run(engine, clock).points_expired == 40  # the 60 held do not expire
    resolve(engine, clock, "TRIP", "void")  # back to the first lot, with its own date
    assert points(engine, "H1") == 60
    clock.advance(timedelta(days=1))
    assert run(engine, clock).points_expired == 60
    assert expired_lots(engine) == [(first, 40), (first, 60)]
    assert points(engine, "H1") == 0
    audit_ok(engine)


def test_a_refund_takes_back_its_own_lot_and_never_leaves_less_than_zero(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "U1")
    start = clock.now().date()
    old = earn(engine, clock, "OLD", "U1", 100)
    months_later(clock, start, 6)
    earn(engine, clock, "NEW", "U1", 80)
    months_later(clock, start, 7)
    refund = run_in_transaction(
        engine,
        lambda s: service.refund_transaction(
            s, transaction_id="NEW", refund_id="RF1", amount="80.00", now=clock.now()
        ),
    )
    assert refund.status_code == 201, refund.body
    months_later(clock, start, 12)
    assert run(engine, clock).points_expired == 100
    assert expired_lots(engine) == [(old, 100)]
    # A member whose refund left the balance below zero has nothing to expire.
    store_member(engine, clock, "U2")
    earn(engine, clock, "SPENT", "U2", 100)
    hold(engine, clock, "U2", "H2", 100)
    resolve(engine, clock, "H2", "confirm")
    run_in_transaction(
        engine,
        lambda s: service.refund_transaction(
            s, transaction_id="SPENT", refund_id="RF2", amount="100.00", now=clock.now()
        ),
    )
    assert points(engine, "U2") == -100
    months_later(clock, start, 40)
    run(engine, clock)
    assert points(engine, "U2") == -100
    audit_ok(engine)


def test_expiry_is_never_run_ahead_of_today(api: Api, engine: Engine, clock: FrozenClock) -> None:
    with pytest.raises(InvalidInput) as error:
        run(engine, clock, clock.now().date() + timedelta(days=1))
    assert error.value.field == "as_of"


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_racing_runs_expire_each_point_once(api: Api, engine: Engine, clock: FrozenClock) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    start = clock.now().date()
    for i in range(12):
        store_member(engine, clock, f"C{i}")
        earn(engine, clock, f"T{i}", f"C{i}", 100 + i)
    months_later(clock, start, 12)

    def go(i: int) -> expiry.RunReport:
        return expiry.expire(engine, as_of=clock.now().date(), now=clock.now(), chunk=5)

    results = race(6, go)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    expected = sum(100 + i for i in range(12))
    reports = [r for r in results if isinstance(r, expiry.RunReport)]
    assert sum(r.points_expired for r in reports) == expected
    assert sorted(expiry_postings(engine)) == sorted(100 + i for i in range(12))
    with read_session(engine) as s:
        assert s.scalar(select(func.coalesce(func.sum(ExpiredLot.points), 0))) == expected
    audit_ok(engine)


# --- warnings -------------------------------------------------------------------------------------


def test_members_are_warned_once_thirty_days_before_in_their_language(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "W1", email="w1@example.org", language="en")
    store_member(engine, clock, "W2", email="w2@example.org", language="fr")
    start = clock.now().date()
    earn(engine, clock, "T1", "W1", 100)
    earn(engine, clock, "T2", "W1", 20)
    earn(engine, clock, "T3", "W2", 300)
    due_day = date(start.year + 1, start.month, start.day)
    months_later(clock, start, 12, days=-31)
    assert run(engine, clock).warnings == 0  # 31 days before: not yet
    months_later(clock, start, 12, days=-30)
    assert run(engine, clock).warnings == 3  # one per lot
    assert run(engine, clock).warnings == 0
    clock.advance(timedelta(days=1))
    assert run(engine, clock).warnings == 0  # the same lots, the same day: never twice
    with read_session(engine) as s:
        keys = sorted(s.scalars(select(ExpiryWarning.key)))
        events = s.scalar(select(func.count()).where(OutboxEvent.type == "points.expiry_warning"))
    assert len(keys) == 3 and all(k.endswith(due_day.isoformat()) for k in keys)
    assert events == 2  # one event per member and run
    with running_smtp() as smtp:
        run_once(engine, clock, smtp_url=smtp.url)
        messages = {str(m["To"]): m for m in smtp.inbox.take()}
        run_once(engine, clock, smtp_url=smtp.url)
        assert smtp.inbox.take() == []  # sent once
    assert sorted(messages) == ["w1@example.org", "w2@example.org"]
    english, french = messages["w1@example.org"], messages["w2@example.org"]
    assert str(english["Subject"]) == "120 points will expire soon"
    assert due_day.isoformat() in english.get_content()
    assert str(french["Subject"]) == "300 points vont bientôt expirer"
    with read_session(engine) as s:
        assert set(s.scalars(select(ExpiryWarning.status))) == {"sent"}


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


def test_the_command_expires_as_of_a_day(
    api: Api, engine: Engine, clock: FrozenClock, cli: Callable[..., Result]
) -> None:
    set_policy(api, {"kind": "after_earn", "months": 1})
    store_member(engine, clock, "K1")
    earn(engine, clock, "T1", "K1", 100)  # 2026-01-01
    result = cli("ledger", "expire", "--as-of", "2026-02-01")
    assert result.exit_code == 0, result.output
    assert "points=100" in result.output and "policy after_earn" in result.output
    again = cli("ledger", "expire", "--as-of", "2026-02-01", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["points_expired"] == 0
    assert points(engine, "K1") == 0
    assert cli("ledger", "expire", "--as-of", "2026-13-01").exit_code == 2
    future = cli("ledger", "expire", "--as-of", "2099-01-01")
    assert future.exit_code == 2 and "after today" in future.output


def test_the_worker_runs_the_policy_once_a_day(api: Api, engine: Engine, clock: FrozenClock) -> None:
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "D1")
    start = clock.now().date()
    earn(engine, clock, "T1", "D1", 100)
    months_later(clock, start, 12)
    maintenance = Maintenance(engine=engine, clock=clock, stop=threading.Event())
    done = maintenance.expire_daily()
    assert done is not None and done["points_expired"] == 100
    assert maintenance.expire_daily() is None  # already run today
    clock.advance(timedelta(days=1))
    again = maintenance.expire_daily()
    assert again is not None and again["points_expired"] == 0
    assert expiry_postings(engine) == [100]


@pytest.mark.slow
def test_expiry_racing_redemptions_never_overdraws(api: Api, engine: Engine, clock: FrozenClock) -> None:
    """Runs and redemptions at once on one member whose only lot is past its day: whatever the order,
    the points go once (redeemed or expired), the balance ends at zero, never below."""
    set_policy(api, {"kind": "after_earn", "months": 12})
    store_member(engine, clock, "X1")
    start = clock.now().date()
    earn(engine, clock, "T1", "X1", 1000)
    months_later(clock, start, 12)
    now = clock.now()
    run_in_transaction(
        engine, lambda s: service.put_catalogue_item(s, sku="pen", name="Pen", points=300, stock=50, now=now)
    )

    def go(i: int) -> Any:
        if i % 2:
            return expiry.expire(engine, as_of=now.date(), now=now)
        request = {"id": f"R{i}", "kind": "catalogue", "sku": "pen", "quantity": 1}
        return run_in_transaction(
            engine, lambda s: service.redeem(s, member_ref="X1", request=request, now=now)
        )

    results = race(10, go)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientPoints)
    ]
    assert not unexpected, unexpected[:3]
    redeemed = sum(300 for r in results if not isinstance(r, BaseException | expiry.RunReport))
    expired = sum(r.points_expired for r in results if isinstance(r, expiry.RunReport))
    assert redeemed + expired == 1000 and len(expiry_postings(engine)) == 1
    assert points(engine, "X1") == 0
    audit_ok(engine)
