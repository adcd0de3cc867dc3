"""The desk's e-mail screens: the triage queue of unknown senders (link to a member, or discard with
a reason) and a case's e-mail thread with the agent's reply form. HTML mail is shown only as the
sanitiser left it (no script, style or image: nothing remote is loaded); plain text is preferred."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response

from prevenance.common.ids import new_id
from prevenance.common.problems import PrevenanceError
from prevenance.console.web import (
    DESK,
    Page,
    PageDep,
    choices,
    console_router,
    problem_errors,
    redirect,
    render,
    screens_for,
)
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import rules as desk_rules
from prevenance.desk import service as desk
from prevenance.desk.mail_in import reads as mail_reads
from prevenance.desk.mail_in import service as mail

router = console_router()
MessageId = Annotated[str, Path(min_length=1, max_length=200)]


def _reasons(p: Page) -> list[tuple[str, str]]:
    return [(r["code"], r[f"label_{p.lang}"]) for r in desk.list_reasons()]


def _queue(p: Page, *, status: int = 200, errors: dict[str, dict[str, str]] | None = None) -> Response:
    with read_session(p.engine) as session:
        queue = [
            mail_reads.get_message(session, message_id=item["id"])
            for item in mail_reads.list_messages(session, state="triage", limit=50)["items"]
        ]
        recent = [
            item
            for item in mail_reads.list_messages(session, state=None, limit=30)["items"]
            if item["direction"] == "inbound" and item["state"] != "triage"
        ][:15]
    return render(
        p,
        "mail.html",
        status,
        screens=screens_for(p),
        queue=queue,
        recent=recent,
        reasons=_reasons(p),
        errors=errors or {},
        done=p.request.query_params.get("done"),
    )


@router.get("/console/mail")
def mail_page(p: PageDep) -> Response:
    """The triage queue: messages whose sender is no member (or more than one)."""
    p.require(*DESK)
    return _queue(p)


@router.post("/console/mail/{message_id}/link")
def link_message(p: PageDep, message_id: MessageId) -> Response:
    """File a message under the member the agent names."""
    user = p.require(*DESK)
    member_ref = p.form.get("member_ref", "").strip()
    reason = p.form.get("reason") or None
    try:
        body = run_in_transaction(
            p.engine,
            lambda s: mail.link_message(
                s, message_id=message_id, member_ref=member_ref, reason=reason, by=user.username, now=p.now
            ),
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, rename={"id": "form"}, inputs={"member_ref", "reason"})
        return _queue(p, status=error.status, errors={message_id: errors})
    return redirect(p, f"/console/cases/{body['case_id']}/mail?done=linked")


@router.post("/console/mail/{message_id}/discard")
def discard_message(p: PageDep, message_id: MessageId) -> Response:
    """Drop a message with the agent's reason."""
    user = p.require(*DESK)
    why = p.form.get("discard_reason", "")
    try:
        run_in_transaction(
            p.engine,
            lambda s: mail.discard_message(s, message_id=message_id, reason=why, by=user.username, now=p.now),
        )
    except PrevenanceError as error:
        errors = problem_errors(
            p, error, rename={"reason": "discard_reason", "id": "form"}, inputs={"discard_reason"}
        )
        return _queue(p, status=error.status, errors={message_id: errors})
    return redirect(p, "/console/mail?done=discarded")


@router.get("/console/mail/{message_id}/attachments/{position}")
def attachment(p: PageDep, message_id: MessageId, position: Annotated[int, Path(ge=0, le=1000)]) -> Response:
    """An attachment, always downloaded (never rendered in the console's origin)."""
    p.require(*DESK)
    with read_session(p.engine) as session:
        filename, _, content = mail_reads.get_attachment(session, message_id=message_id, position=position)
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in filename)[:120] or "attachment"
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _thread(
    p: Page,
    case_id: str,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    with read_session(p.engine) as session:
        case = desk.get_case(session, case_id=case_id)
        thread = mail_reads.case_thread(session, case_id=case_id)
    defaults = {"key": new_id("reply"), "outcome": "pending", "reason": case["reason"], "body": ""}
    return render(
        p,
        "mail_thread.html",
        status,
        screens=screens_for(p),
        case=case,
        thread=thread,
        reasons=_reasons(p),
        reason_labels=dict(_reasons(p)),
        outcomes=choices(desk_rules.OUTCOMES, p, "outcome"),
        values={**defaults, **(values or {})},
        errors=errors or {},
        done=p.request.query_params.get("done"),
    )


@router.get("/console/cases/{case_id}/mail")
def thread_page(p: PageDep, case_id: MessageId) -> Response:
    """A case's e-mails in and out, with the reply form."""
    p.require(*DESK)
    return _thread(p, case_id)


@router.post("/console/cases/{case_id}/mail")
def reply(p: PageDep, case_id: MessageId) -> Response:
    """Queue the agent's answer (the form's key is the idempotency key: a double submit sends once)."""
    user = p.require(*DESK)
    form = p.form
    answer = mail.ReplyInput(
        id=form.get("key", "")[:200] or new_id("reply"),
        body=form.get("body", ""),
        outcome=form.get("outcome", "pending"),
        reason=form.get("reason") or None,
    )
    try:
        run_in_transaction(
            p.engine,
            lambda s: mail.reply_to_case(
                s, case_id=case_id, reply=answer, agent=user.username, team="email", now=p.now
            ),
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, rename={"id": "form"}, inputs={"body", "outcome", "reason"})
        return _thread(p, case_id, status=error.status, values=dict(form), errors=errors)
    return redirect(p, f"/console/cases/{case_id}/mail?done=sent")


def thread_links(open_cases: list[dict[str, Any]]) -> dict[str, str]:
    """Each case's thread page (for the 360's case list)."""
    return {case["id"]: f"/console/cases/{case['id']}/mail" for case in open_cases}
