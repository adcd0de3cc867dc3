"""The demo's chat: the member first notified of the active incident opens a chat at that moment,
writes, and the demo agent (``demo-agent``, serving every moment's team) takes it and answers. The
ids are fixed, so loading the demo again changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine

from prevenance.db import read_session, run_in_transaction
from prevenance.demo.plan import Person
from prevenance.desk.chat import config as chat_config
from prevenance.desk.chat import live
from prevenance.desk.chat import service as chat
from prevenance.views import chat_moments

AGENT = "demo-agent"


def load_chat_demo(engine: Engine, *, people: Sequence[Person], seed: int, now: datetime) -> dict[str, int]:
    """Open one chat at an active incident (when a demo member is affected by one); returns counts."""
    teams = sorted({policy.team for policy in chat_config.current().moments.values()})
    run_in_transaction(engine, lambda s: chat.put_agent(s, name=AGENT, teams=teams, now=now))
    for person in people[:50]:
        with read_session(engine) as session:
            moments = chat_moments.current_moments(session, member_ref=person.ref, now=now)
        incident = next((m for m in moments if m.kind == "incident"), None)
        if incident is not None:
            break
    else:
        return {"chats": 0}
    chat_id = f"demo-{seed}-chat-1"
    opened = chat_moments.open_chat(
        engine, key=chat_id, member_ref=person.ref, moment_kind="incident", moment_ref=incident.ref, now=now
    )
    chat_id = opened.body["id"]
    member = chat.ChatActor("member", person.ref, member_ref=person.ref)
    with read_session(engine) as session:
        agent = chat.actor_for_agent(session, name=AGENT, supervisor=False)
    french = person.language == "fr"
    _say(engine, chat_id, member, "demo-1", MEMBER_FR if french else MEMBER_EN, now + timedelta(minutes=1))
    taken = now + timedelta(minutes=2)
    body = run_in_transaction(engine, lambda s: chat.take(s, conversation_id=chat_id, actor=agent, now=taken))
    live.publish_status(body)
    _say(engine, chat_id, agent, "demo-2", AGENT_FR if french else AGENT_EN, now + timedelta(minutes=3))
    return {"chats": 1}


MEMBER_FR = "Mon paiement sans contact est refusé depuis ce matin, que se passe-t-il ?"
MEMBER_EN = "My contactless payment has been declined since this morning, what is going on?"
AGENT_FR = "Un incident touche le sans contact dans votre ville ; la carte insérée avec le code fonctionne."
AGENT_EN = "An incident affects contactless payments in your city; inserting the card with the PIN works."


def _say(
    engine: Engine, chat_id: str, actor: chat.ChatActor, client_id: str, text: str, at: datetime
) -> None:
    posted = run_in_transaction(
        engine,
        lambda s: chat.post_message(
            s, conversation_id=chat_id, actor=actor, client_id=client_id, text=text, now=at
        ),
    )
    if not posted.replayed:
        live.publish_message(posted.body)
