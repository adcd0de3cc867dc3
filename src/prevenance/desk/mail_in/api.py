"""REST routes of the desk's e-mail: the triage queue (link a message to a member, or discard it),
one message with its attachments, a case's thread and the agent's answer. Desk staff only (agents
and supervisors; admin always)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.db import read_session, run_in_transaction
from prevenance.desk.mail_in import reads, service
from prevenance.desk.mail_in.schemas import (
    CaseReplyCreate,
    MailDiscard,
    MailLink,
    MailMessageRead,
    MailMessagesPage,
    State,
)

router = APIRouter(prefix="/v1", tags=["desk"])
MailStaff = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR))]
Ref = Annotated[str, Path(min_length=1, max_length=200)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found", **_PROBLEM},
    409: {"description": "Conflict", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}


@router.get("/mail/messages", response_model=MailMessagesPage)
def get_mail_messages(
    engine: DbEngine,
    _: MailStaff,
    state: Annotated[State | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """E-mail messages newest first; ``state=triage`` is the queue of unknown senders."""
    with read_session(engine) as session:
        return reads.list_messages(session, state=state, limit=limit)


@router.get("/mail/messages/{id}", response_model=MailMessageRead, responses=ERRORS)
def get_mail_message(id: Ref, engine: DbEngine, _: MailStaff) -> dict[str, Any]:
    """One message: plain text, sanitised HTML, attachments listed."""
    with read_session(engine) as session:
        return reads.get_message(session, message_id=id)


@router.get("/mail/messages/{id}/attachments/{position}", responses=ERRORS)
def get_mail_attachment(
    id: Ref, position: Annotated[int, Path(ge=0, le=1000)], engine: DbEngine, _: MailStaff
) -> Response:
    """An attachment's bytes, always as a download (never rendered by the browser)."""
    with read_session(engine) as session:
        filename, content_type, content = reads.get_attachment(session, message_id=id, position=position)
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in filename)[:120] or "attachment"
    return Response(
        content,
        media_type=content_type if "/" in content_type else "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/mail/messages/{id}/link", response_model=MailMessageRead, responses=ERRORS)
def post_mail_link(
    id: Ref, body: MailLink, engine: DbEngine, clock: AppClock, principal: MailStaff
) -> dict[str, Any]:
    """File a message of triage under a member: it becomes their contact, in a case (and the thread
    is acknowledged). Linking again to the same member changes nothing; otherwise 409."""
    return run_in_transaction(
        engine,
        lambda s: service.link_message(
            s,
            message_id=id,
            member_ref=body.member_ref,
            reason=body.reason,
            by=principal.name,
            now=clock.now(),
        ),
    )


@router.post("/mail/messages/{id}/discard", response_model=MailMessageRead, responses=ERRORS)
def post_mail_discard(
    id: Ref, body: MailDiscard, engine: DbEngine, clock: AppClock, principal: MailStaff
) -> dict[str, Any]:
    """Drop a message of triage with a reason (discarding again changes nothing)."""
    return run_in_transaction(
        engine,
        lambda s: service.discard_message(
            s, message_id=id, reason=body.reason, by=principal.name, now=clock.now()
        ),
    )


@router.get("/cases/{id}/mail", response_model=list[MailMessageRead], responses=ERRORS)
def get_case_mail(id: Ref, engine: DbEngine, _: MailStaff) -> list[dict[str, Any]]:
    """A case's e-mails, received and sent, oldest first."""
    with read_session(engine) as session:
        return reads.case_thread(session, case_id=id)


@router.post("/cases/{id}/replies", status_code=201, response_model=MailMessageRead, responses=ERRORS)
def post_case_reply(
    id: Ref, body: CaseReplyCreate, engine: DbEngine, clock: AppClock, principal: MailStaff
) -> JSONResponse:
    """Answer the member by e-mail (queued, sent by the relay with In-Reply-To and References); the
    same ``id`` and body replay the answer, another body → 409."""
    reply = service.ReplyInput(id=body.id, body=body.body, outcome=body.outcome, reason=body.reason)
    return respond(
        run_in_transaction(
            engine,
            lambda s: service.reply_to_case(
                s, case_id=id, reply=reply, agent=principal.name, team="email", now=clock.now()
            ),
        )
    )
