"""Benchmark: inbound e-mail accepted and stored, against a bare aiosmtpd listener, in one run.

1. A SQLite file is migrated and seeded with ``--members`` members and ``--contacts`` past contacts
   whose notes the reason classifier learns from (the demo's phrases);
2. two listeners are started as processes on free ports:

   - **bare**: ``python -m aiosmtpd -c aiosmtpd.handlers.Sink`` (accepts and stores nothing);
   - **mail-in**: ``prevenance desk mail-in`` on the SQLite file (one listener, one writer thread):
     every message parsed, classified, stored once by Message-ID with its attachment, and filed
     (a member's opens or continues a case with a contact and an acknowledgement queued; an
     unknown sender's waits in triage; an auto-reply is kept and ignored);

3. the same ``--messages`` messages (about 2 KB, one in ten with a 20 KB attachment; 60 % from
   members, half of them answering an earlier message, 30 % unknown senders, 10 % auto-replies)
   are sent to each by ``--clients`` concurrent SMTP clients (smtplib, one kept-open session per
   client, as a mail server forwarding a burst does).

It prints, for each listener, messages per second, the latency of one message (MAIL FROM to the
``250`` after DATA) p50/p99/max, the listener's CPU seconds and messages per CPU second (what one
core would sustain: on a shared machine the wall-clock rate depends on the share of the cores the
listener got, this does not), peak resident memory (``VmHWM``) and the load average during the run,
then checks that every message was stored exactly once (and a resent tenth changes nothing).

    python benchmarks/mail_in.py [--messages 3000] [--clients 4] [--members 2000] [--contacts 3000]
"""

from __future__ import annotations

import argparse
import email.policy
import os
import random
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from _server import cpu_seconds, free_port, peak_rss_kb, stop
from sqlalchemy import func, select

from prevenance.customers import service as customers
from prevenance.db import make_engine, read_session, unit_of_work
from prevenance.demo.mail import PHRASES, contact_note
from prevenance.desk import service as desk
from prevenance.desk.mail_in.tables import MailMessage
from prevenance.loyalty import programme
from prevenance.migrate import upgrade

BIN = Path(sys.executable).parent
PREVENANCE = str(BIN / "prevenance") if (BIN / "prevenance").exists() else shutil.which("prevenance")
DESK = "service@prevenance.example"
TARGET_PER_SECOND = 100.0


def seed(url: str, *, members: int, contacts: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    reasons = sorted(PHRASES)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
        for i in range(members):
            data = customers.MemberData(
                name=f"Member {i}", email=f"m{i}@example.fr", language="fr", country="FR", product="gold"
            )
            customers.upsert(session, ref=f"B{i:06d}", data=data, now=now)
    rng = random.Random(7)
    with unit_of_work(engine) as session:
        for i in range(contacts):
            reason = rng.choice(reasons)
            at = now - timedelta(days=rng.randrange(1, 300))
            desk.log_contact(
                session,
                contact=desk.ContactInput(
                    id=f"past-{i}",
                    member_ref=f"B{rng.randrange(members):06d}",
                    channel="phone",
                    direction="inbound",
                    agent="a1",
                    team="paris",
                    reason=reason,
                    started_at=at,
                    ended_at=at + timedelta(minutes=4),
                    notes=contact_note(reason, f"past-{i}"),
                    outcome="resolved",
                ),
                now=now,
            )
    engine.dispose()


def messages(count: int, *, members: int, run: str) -> list[tuple[str, bytes]]:
    """(envelope sender, raw message) pairs, deterministic for a seed."""
    rng = random.Random(11)
    reasons = sorted(PHRASES)
    out: list[tuple[str, bytes]] = []
    earlier: list[tuple[str, str]] = []  # (sender, message id) of members' messages
    filler = "Je vous écris au sujet de mon compte et de ma carte. " * 30
    for i in range(count):
        mail = EmailMessage()
        kind = rng.random()
        message_id = f"<{run}-{i}@bench.example>"
        if kind < 0.6:
            if earlier and rng.random() < 0.5:
                sender, parent = rng.choice(earlier)
                mail["In-Reply-To"] = parent
                mail["References"] = parent
            else:
                sender = f"m{rng.randrange(members)}@example.fr"
            earlier.append((sender, message_id))
        elif kind < 0.9:
            sender = f"stranger{i}@example.com"
        else:
            sender = f"m{rng.randrange(members)}@example.fr"
            mail["Auto-Submitted"] = "auto-replied"
        reason = rng.choice(reasons)
        mail["From"] = sender
        mail["To"] = DESK
        mail["Subject"] = rng.choice(PHRASES[reason])[:60]
        mail["Message-ID"] = message_id
        mail.set_content(f"Bonjour,\n\n{rng.choice(PHRASES[reason])}.\n\n{filler}\n")
        if i % 10 == 0:
            mail.add_attachment(
                os.urandom(15_000), maintype="application", subtype="pdf", filename="piece.pdf"
            )
        out.append((sender, mail.as_bytes(policy=email.policy.SMTP)))
    return out


def send_all(port: int, batch: list[tuple[str, bytes]], clients: int) -> tuple[float, list[float]]:
    """Send ``batch`` over ``clients`` kept-open sessions; (wall seconds, latencies in ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [batch[i::clients] for i in range(clients)]
    errors: list[BaseException] = []

    def client(share: list[tuple[str, bytes]]) -> None:
        mine: list[float] = []
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                for sender, raw in share:
                    started = time.perf_counter()
                    smtp.sendmail(sender, [DESK], raw)
                    mine.append((time.perf_counter() - started) * 1000)
        except BaseException as error:  # reported after the run
            errors.append(error)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} client(s) failed: {errors[0]!r}")
    return wall, latencies


def wait_smtp(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait for the listener's ``220`` greeting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"listener on port {port} exited with {process.returncode}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
                smtp.noop()
                return
        except (OSError, smtplib.SMTPException):
            time.sleep(0.1)
    raise SystemExit(f"listener on port {port} did not greet within {timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    name: str, command: list[str], env: dict[str, str], batch: list[tuple[str, bytes]], clients: int
) -> dict[str, float]:
    port = free_port()
    process = subprocess.Popen(
        [*command, *(["--port", str(port)] if name == "mail-in" else ["-l", f"127.0.0.1:{port}"])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_smtp(port, process)
        cpu_before = cpu_seconds(process.pid)
        wall, latencies = send_all(port, batch, clients)
        cpu = cpu_seconds(process.pid) - cpu_before
        peak = peak_rss_kb(process.pid)
    finally:
        stop(process)
    return {
        "rate": len(batch) / wall,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "cpu": cpu,
        "peak_mib": peak / 1024,
        "wall": wall,
        "count": len(batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--contacts", type=int, default=3000)
    args = parser.parse_args()
    if PREVENANCE is None:
        raise SystemExit("the prevenance command is not installed in this environment")
    workdir = Path(tempfile.mkdtemp(prefix="mail-in-bench-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    try:
        started = time.perf_counter()
        seed(url, members=args.members, contacts=args.contacts)
        print(
            f"seeded {args.members} members and {args.contacts} past contacts in {time.perf_counter() - started:.1f} s"
        )
        batch = messages(args.messages, members=args.members, run="bench")
        size = sum(len(raw) for _, raw in batch) / len(batch)
        print(
            f"{len(batch)} messages, {size / 1024:.1f} KiB on average, {args.clients} concurrent SMTP clients"
        )
        env = {**os.environ, "PREVENANCE_DATABASE_URL": url, "PREVENANCE_MAIL_IN_ADDRESSES": DESK}
        env.pop("PREVENANCE_LOG_JSON", None)
        bare = measure(
            "bare",
            [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink"],
            env,
            batch,
            args.clients,
        )
        ours = measure(
            "mail-in", [PREVENANCE, "desk", "mail-in", "--host", "127.0.0.1"], env, batch, args.clients
        )
        # A tenth sent again (a forwarding server retrying): nothing more is stored.
        again = measure(
            "mail-in",
            [PREVENANCE, "desk", "mail-in", "--host", "127.0.0.1"],
            env,
            batch[: len(batch) // 10],
            args.clients,
        )
        engine = make_engine(url)
        with read_session(engine) as session:
            stored = session.scalar(select(func.count()).where(MailMessage.direction == "inbound")) or 0
            states = dict(
                session.execute(
                    select(MailMessage.state, func.count())
                    .where(MailMessage.direction == "inbound")
                    .group_by(MailMessage.state)
                ).all()
            )
            queued = session.scalar(select(func.count()).where(MailMessage.direction == "outbound")) or 0
        engine.dispose()
        print()
        print(
            f"{'listener':<28}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU s':>8}"
            f"{'msg/CPU s':>11}{'peak MiB':>10}"
        )
        for label, row in (
            ("bare aiosmtpd (Sink)", bare),
            ("prevenance desk mail-in", ours),
            ("mail-in, duplicates resent", again),
        ):
            print(
                f"{label:<28}{row['rate']:>9.0f}{row['p50']:>9.1f}{row['p99']:>9.1f}{row['max']:>9.1f}"
                f"{row['cpu']:>8.1f}{row['count'] / max(row['cpu'], 1e-9):>11.0f}{row['peak_mib']:>10.0f}"
            )
        print()
        print(
            f"stored once: {stored} of {len(batch)} sent (+{len(batch) // 10} resent); by state {states}; "
            f"{queued} acknowledgements queued"
        )
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        verdict = "met" if ours["rate"] >= TARGET_PER_SECOND else "NOT met"
        print(
            f"target >= {TARGET_PER_SECOND:.0f} messages/s accepted and stored on SQLite: {verdict} "
            f"({ours['rate'] / bare['rate'] * 100:.0f}% of the bare listener's rate)"
        )
        if stored != len(batch):
            raise SystemExit("some messages were not stored exactly once")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
