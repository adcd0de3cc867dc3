"""Incidents and goodwill: while an incident is active no marketing offer reaches a member it
affects (recorded as suppressed, ``incident-active``, in the treatment and the control arm alike);
once resolved, the operator grants goodwill to every affected member, one posting each, exactly
once even when the call is retried or the process is killed half-way (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.loyalty.tables import GoodwillGrant, Posting
from prevenance.maintenance import run_once
from prevenance.offers.tables import OfferDecision, OfferSuppression
from tests.conftest import Api
from tests.integration.desk.test_incidents import incident
from tests.integration.offers.conftest import add_member, offer_def, pay, refs_in_arm
from tests.integration.voice.conftest import smtp as smtp
from tests.smtp_server import Smtp

RESOLUTION = {"body_fr": "C'est réparé.", "body_en": "It is fixed."}


def count(engine: Engine, model: type, *where: Any) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_offers_are_suppressed_in_both_arms_while_an_incident_is_active(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    assert api.put("/v1/offers/books", offer_def(), role="marketing").status_code in (200, 201)
    treated = refs_in_arm("books", "treatment", 2, prefix="T")
    control = refs_in_arm("books", "control", 2, prefix="C")
    for ref in treated + control:
        add_member(api, ref)  # gold, FR: the incident's target
    add_member(api, "OUT", country="BE")
    declared = api.post("/v1/incidents", incident(affects={"countries": ["FR"]}), role="supervisor")
    assert declared.status_code == 201, declared.text

    for i, ref in enumerate([treated[0], control[0], "OUT"]):
        body = pay(api, f"t{i}", ref)
        assert ("offer" in body) == (ref == "OUT")
    with read_session(engine) as session:
        suppressed = session.execute(
            select(OfferSuppression.arm, OfferSuppression.reason).order_by(OfferSuppression.arm)
        ).all()
    assert suppressed == [("control", "incident-active"), ("treatment", "incident-active")]
    assert count(engine, OfferDecision) == 1  # OUT's offer only: neither arm kept a decision

    assert api.post("/v1/incidents/INC1/resolve", RESOLUTION, role="supervisor").status_code == 200
    body = pay(api, "t9", treated[1])
    assert "offer" in body  # resolved: offers again
    pay(api, "t10", control[1])
    with read_session(engine) as session:
        arms = sorted(session.scalars(select(OfferDecision.arm)))
    assert arms == ["control", "treatment", "treatment"]
    assert count(engine, OfferSuppression) == 2


def test_goodwill_to_every_affected_member_once(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    for ref in ("M1", "M2", "M3"):
        add_member(api, ref)
    add_member(api, "E1", language="en")
    add_member(api, "OUT", country="BE")
    api.post("/v1/incidents", incident(affects={"countries": ["FR"]}), role="supervisor")
    early = api.post("/v1/incidents/INC1/goodwill", role="supervisor")
    assert early.status_code == 409 and early.headers["content-type"].startswith("application/problem+json")
    assert api.post("/v1/incidents/NOPE/goodwill", role="supervisor").status_code == 404
    assert api.post("/v1/incidents/INC1/goodwill", role="agent").status_code == 403
    api.post("/v1/incidents/INC1/resolve", RESOLUTION, role="supervisor")
    first = api.post("/v1/incidents/INC1/goodwill", role="supervisor")
    assert first.status_code == 200, first.text
    assert first.json() == {"incident_id": "INC1", "affected": 4, "granted": 4, "already": 0}
    again = api.post("/v1/incidents/INC1/goodwill", role="supervisor").json()
    assert again == {"incident_id": "INC1", "affected": 4, "granted": 0, "already": 4}
    assert count(engine, Posting, Posting.reason == "goodwill", Posting.reference == "INC1") == 4
    run_once(engine, clock, smtp_url=smtp.url)
    told = [m for m in smtp.inbox.take() if str(m["Subject"]).startswith(("A gesture", "Un geste"))]
    assert len(told) == 4
    log = api.get("/v1/members/E1/communications", role="agent").json()["items"]
    goodwill_mails = [c for c in log if c["template"] == "goodwill-incident"]
    assert len(goodwill_mails) == 1 and goodwill_mails[0]["language"] == "en"
    assert "1000 points" in goodwill_mails[0]["summary"]
    figures = api.get("/v1/goodwill?month=2026-01", role="marketing").json()
    assert [(r["key"], r["count"]) for r in figures["by_reason"]] == [("incident", 4)]
    assert [(r["key"], r["count"]) for r in figures["by_team"]] == [("incidents", 4)]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from prevenance.db import make_engine
    from prevenance.loyalty import goodwill
    from prevenance.views import goodwill as view

    url, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    view.BATCH = 1  # one member per transaction: the kill lands between committed grants
    original, calls = goodwill.grant, []

    def grant(session, **kwargs):
        result = original(session, **kwargs)
        calls.append(kwargs["member_id"])
        if len(calls) == 3:
            session.flush()
            print("third grant written, dying", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    goodwill.grant = grant
    view.grant_incident_goodwill(make_engine(url), incident_id="INC1", by="operator", now=now)
    print("survived", flush=True)
    """
)


def test_a_grant_killed_half_way_resumes_without_granting_twice(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    refs = [f"M{i}" for i in range(5)]
    for ref in refs:
        add_member(api, ref)
    api.post("/v1/incidents", incident(affects={"countries": ["FR"]}), role="supervisor")
    api.post("/v1/incidents/INC1/resolve", RESOLUTION, role="supervisor")
    script = tmp_path / "die.py"
    script.write_text(CHILD)
    child = subprocess.run(
        [
            sys.executable,
            str(script),
            engine.url.render_as_string(hide_password=False),
            clock.now().isoformat(),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "dying" in child.stdout and "survived" not in child.stdout
    assert count(engine, GoodwillGrant) == 2  # the third member's transaction died with the process
    assert count(engine, Posting, Posting.reason == "goodwill") == 2

    resumed = api.post("/v1/incidents/INC1/goodwill", role="supervisor").json()
    assert resumed == {"incident_id": "INC1", "affected": 5, "granted": 3, "already": 2}
    with read_session(engine) as session:
        per_member = session.execute(
            select(Posting.member_id, func.count())
            .where(Posting.reason == "goodwill")
            .group_by(Posting.member_id)
        ).all()
    assert len(per_member) == 5 and all(n == 1 for _, n in per_member)
