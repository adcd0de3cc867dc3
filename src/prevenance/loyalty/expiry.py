"""Running the programme's points expiry policy (``prevenance ledger expire``, the worker's daily run).

Per member (a chunk of members per transaction, read in a few set-based queries), under the lock an
earn would take, the member's points postings are replayed into lots
(``expiry_rules.replay``); the lots due by ``as_of`` are taken back in one posting (reason
``expiry``, key ``expiry:<member>:<day>``) with the lots it consumed in ``expired_lots``, and the
lots expiring within the warning window get one row each in ``expiry_warnings`` (unique key), the
mail outbox of the warning. So a re-run for the same day is a no-op, two runs racing post once, a
lot is warned about once per expiry day, and an expiry never takes the balance below zero (the
debit is the conditional one of redemptions). Each chunk of members commits on its own: a run that
dies part-way is finished by the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select
from sqlalchemy.orm import Session

from prevenance.common import mail, outbox
from prevenance.common.i18n import translate
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.db import insert_ignoring_conflicts, unit_of_work
from prevenance.loyalty import expiry_rules, ledger, programme
from prevenance.loyalty.expiry_rules import ExpiryPolicy, Movement
from prevenance.loyalty.tables import Account, ExpiredLot, ExpiryWarning, Posting

UNIT = "points"  # miles are the airline's: exported to the partner, whose own rules apply
CHUNK = 200  # members per transaction
SENDER = "Prévenance <rewards@prevenance.example>"
_WARNINGS: Table = ExpiryWarning.__table__  # type: ignore[assignment]
_LOTS: Table = ExpiredLot.__table__  # type: ignore[assignment]
_INSERT_LOTS = insert(_LOTS)
# RETURNING names the rows that were new (psycopg gives no rowcount for ON CONFLICT DO NOTHING).
_INSERT_WARNING = {
    name: statement.returning(_WARNINGS.c.key)
    for name, statement in insert_ignoring_conflicts(_WARNINGS).items()
}


@dataclass
class RunReport:
    """What one run did."""

    as_of: str
    policy: str
    members: int = 0
    members_expired: int = 0
    points_expired: int = 0
    warnings: int = 0
    skipped_already_run: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "policy": self.policy,
            "members": self.members,
            "members_expired": self.members_expired,
            "points_expired": self.points_expired,
            "warnings": self.warnings,
            "skipped_already_run": self.skipped_already_run,
        }


def check_as_of(as_of: date, now: datetime) -> None:
    """Expiry is never run ahead of time: points would go before their day."""
    if as_of > now.date():
        raise InvalidInput(
            f"as_of {as_of.isoformat()} is after today ({now.date().isoformat()})", field="as_of"
        )


def _movements_of(session: Session, account_ids: list[int]) -> dict[int, list[Movement]]:
    """The postings of several member accounts at once (credits and debits read apart, so each
    side uses its index), by account, in posting order."""
    found: dict[int, list[Movement]] = {account_id: [] for account_id in account_ids}
    columns = (Posting.id, Posting.reason, Posting.reference, Posting.amount, Posting.created_at)
    for side, sign in ((Posting.credit_account_id, 1), (Posting.debit_account_id, -1)):
        for row in session.execute(select(*columns, side).where(side.in_(account_ids))):
            found[row[5]].append(Movement(row[0], row[1], row[2], sign * row[3], row[4]))
    for movements_ in found.values():
        movements_.sort(key=lambda m: m.posting_id)
    return found


def _recorded_of(session: Session, member_ids: list[int]) -> dict[int, dict[int, list[tuple[int, int]]]]:
    found: dict[int, dict[int, list[tuple[int, int]]]] = {}
    rows = session.execute(
        select(
            ExpiredLot.member_id, ExpiredLot.expiry_posting_id, ExpiredLot.earn_posting_id, ExpiredLot.points
        )
        .where(ExpiredLot.member_id.in_(member_ids))
        .order_by(ExpiredLot.expiry_posting_id, ExpiredLot.earn_posting_id)
    )
    for member_id, expiry_id, earn_id, points in rows:
        found.setdefault(member_id, {}).setdefault(expiry_id, []).append((earn_id, points))
    return found


def expire_chunk(
    session: Session,
    *,
    accounts: list[tuple[int, int]],
    policy: ExpiryPolicy,
    as_of: date,
    now: datetime,
    report: RunReport,
) -> None:
    """Expire what is due for these members ((points account id, member id), by account id) and
    queue the warnings owed; a member already run for ``as_of`` is left alone."""
    if not accounts:
        return
    # The locks an earn or a redemption takes on the accounts, in account-id order as the earn
    # engine takes them (no-op on SQLite, whose write transaction already excludes them).
    session.execute(
        select(Account.id)
        .where(Account.id.in_([a for a, _ in accounts]))
        .order_by(Account.id)
        .with_for_update()
    ).all()
    keys = {member_id: f"expiry:{member_id}:{as_of.isoformat()}" for _, member_id in accounts}
    done = set(
        session.scalars(select(Posting.idempotency_key).where(Posting.idempotency_key.in_(keys.values())))
    )
    todo = [(a, m) for a, m in accounts if keys[m] not in done]
    report.skipped_already_run += len(accounts) - len(todo)
    if not todo:
        return
    member_ids = [m for _, m in todo]
    by_account = _movements_of(session, [a for a, _ in todo])
    recorded = _recorded_of(session, member_ids)
    refs = customers.refs_of(session, member_ids=member_ids)
    languages = dict(customers.languages_of(session, member_ids=member_ids))  # erased members left out
    expiry_account = ledger.system_account(session, name="expiry", unit=UNIT)
    lots: list[dict[str, Any]] = []
    expired_events: list[dict[str, Any]] = []
    warned: list[dict[str, Any]] = []
    for account_id, member_id in todo:
        state = expiry_rules.replay(by_account[account_id], recorded.get(member_id))
        items = expiry_rules.due(state, policy, as_of)
        total = sum(item.points for item in items)
        if total > 0:
            posted = ledger.post(
                session,
                debit=ledger.AccountRef(id=account_id, unit=UNIT, member_id=member_id, tracks_balance=True),
                credit=expiry_account,
                amount=total,
                reason="expiry",
                reference=f"expiry:{as_of.isoformat()}",
                key=keys[member_id],
                now=now,
                require_funds=True,
            )
            lots += [
                {
                    "expiry_posting_id": posted.posting_id,
                    "earn_posting_id": item.posting_id,
                    "member_id": member_id,
                    "points": item.points,
                    "expired_on": as_of,
                }
                for item in items
            ]
            expired_events.append(
                {
                    "member_ref": refs.get(member_id),
                    "points": total,
                    "as_of": as_of.isoformat(),
                    "posting_id": posted.posting_id,
                    "lots": [[item.posting_id, item.points] for item in items],
                    "balance": posted.balance_after,
                }
            )
            report.members_expired += 1
            report.points_expired += total
        if member_id in languages:  # an erased member is told nothing
            warned += [
                {
                    "key": expiry_rules.warning_key(member_id, policy, item),
                    "member_id": member_id,
                    "earn_posting_id": item.posting_id,
                    "points": item.points,
                    "expires_on": item.expires_on,
                    "language": languages[member_id],
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                }
                for item in expiry_rules.warnings(state, policy, as_of)
            ]
    if lots:
        session.execute(_INSERT_LOTS, lots)
    outbox.emit_many(session, type="points.expired", payloads=expired_events, now=now)
    if warned:
        _queue_warnings(session, rows=warned, refs=refs, now=now, report=report)


def _queue_warnings(
    session: Session, *, rows: list[dict[str, Any]], refs: dict[int, str], now: datetime, report: RunReport
) -> None:
    """Insert the warnings owed (a key already there is left alone: never warned twice) and tell the
    outbox once per member who has new ones."""
    statement = _INSERT_WARNING[session.get_bind().dialect.name]
    new = set(session.scalars(statement, rows))
    per_member: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["key"] in new:
            per_member.setdefault(row["member_id"], []).append(row)
    outbox.emit_many(
        session,
        type="points.expiry_warning",
        payloads=[
            {
                "member_ref": refs.get(member_id),
                "points": sum(row["points"] for row in owed),
                "expires_on": min(row["expires_on"] for row in owed).isoformat(),
            }
            for member_id, owed in per_member.items()
        ],
        now=now,
    )
    report.warnings += len(new)


def candidates(session: Session, *, after: int, limit: int) -> list[tuple[int, int]]:
    """(account id, member id) of the members holding points, by account id: only they have
    anything to expire or be warned about."""
    rows = session.execute(
        select(Account.id, Account.member_id)
        .where(
            Account.unit == UNIT,
            Account.tracks_balance.is_(True),
            Account.balance > 0,
            Account.id > after,
        )
        .order_by(Account.id)
        .limit(limit)
    ).all()
    return [(int(r[0]), int(r[1] or 0)) for r in rows]


def expire(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    chunk: int = CHUNK,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Run the policy in force for every member holding points, ``chunk`` members per transaction;
    ``on_progress(done, total)`` after each chunk. The default policy (none) does nothing at all."""
    check_as_of(as_of, now)
    with unit_of_work(engine) as session:
        policy = programme.current(session).points_expiry
        # The expiry account exists before any member is locked (no account creation under a lock).
        ledger.system_account(session, name="expiry", unit=UNIT)
        total = session.scalar(
            select(func.count()).where(
                Account.unit == UNIT, Account.tracks_balance.is_(True), Account.balance > 0
            )
        )
    report = RunReport(as_of=as_of.isoformat(), policy=policy.kind)
    if policy.kind == "none":
        return report
    after = 0
    while True:
        with unit_of_work(engine) as session:
            ids = candidates(session, after=after, limit=chunk)
            expire_chunk(session, accounts=ids, policy=policy, as_of=as_of, now=now, report=report)
        if not ids:
            break
        after = ids[-1][0]
        report.members += len(ids)
        if on_progress is not None:
            on_progress(report.members, max(int(total or 0), report.members))
    return report


def expire_in_session(session: Session, *, as_of: date, now: datetime) -> RunReport:
    """``expire`` inside the caller's one transaction (tests, small programmes)."""
    check_as_of(as_of, now)
    policy = programme.current(session).points_expiry
    report = RunReport(as_of=as_of.isoformat(), policy=policy.kind)
    if policy.kind == "none":
        return report
    ledger.system_account(session, name="expiry", unit=UNIT)
    after = 0
    while ids := candidates(session, after=after, limit=CHUNK):
        expire_chunk(session, accounts=ids, policy=policy, as_of=as_of, now=now, report=report)
        report.members += len(ids)
        after = ids[-1][0]
    return report


# --- the warning mails ------------------------------------------------------------------------------


def dedup_key(warning_id: int) -> str:
    return mail.stable_key("exp", str(warning_id))


class _WarningQueue:
    """``expiry_warnings`` as a mail queue: one mail per member covers all its pending warnings."""

    kind = "expiry_warning"

    def next_due(self, session: Session, now: datetime) -> ExpiryWarning | None:
        return mail.next_due_row(
            session, ExpiryWarning, now, order_by=(ExpiryWarning.created_at, ExpiryWarning.id)
        )

    def _pending(self, session: Session, warning: ExpiryWarning) -> list[ExpiryWarning]:
        return list(
            session.scalars(
                select(ExpiryWarning).where(
                    ExpiryWarning.member_id == warning.member_id, ExpiryWarning.status == "pending"
                )
            )
        )

    def compose(self, session: Session, warning: ExpiryWarning, now: datetime) -> EmailMessage:
        member = customers.find_member_by_id(session, member_id=warning.member_id)
        if member is None or customers.is_erased(member):
            raise mail.Unsendable("the member is gone")
        pending = self._pending(session, warning) or [warning]
        points = sum(w.points for w in pending)
        first = min(w.expires_on for w in pending)
        language = warning.language
        return mail.compose(
            sender=SENDER,
            to=member.email,
            subject=translate(language, "mail.expiry.subject", points=f"{points:,}".replace(",", " ")),
            message_id=f"<{dedup_key(warning.id)}@prevenance.expiry>",
            date=now,
            language=language,
            body=translate(
                language,
                "mail.expiry.body",
                name=member.name,
                points=f"{points:,}".replace(",", " "),
                date=first.isoformat(),
            ),
        )

    def mark_sent(self, session: Session, warning: ExpiryWarning, now: datetime) -> bool:
        where = (ExpiryWarning.member_id == warning.member_id,)
        return bool(mail.mark_rows_sent(session, ExpiryWarning, now, where=where))

    def mark_unsent(self, session: Session, warning: ExpiryWarning, unsent: mail.Unsent) -> None:
        mail.record_unsent(session, ExpiryWarning, warning.id, unsent)


def send_pending_warnings(engine: Engine, *, smtp_url: str, now: datetime, limit: int = 1000) -> int:
    """Send the expiry warnings that are due; returns how many mails were sent."""
    return mail.deliver(engine, _WarningQueue(), smtp_url=smtp_url, now=now, limit=limit).sent
