"""Errors of the member chat; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, Forbidden, InvalidInput, NotFound


class UnknownChat(NotFound):
    type_slug = "unknown-chat"
    title = "Unknown chat"


class ChatNotYours(Forbidden):
    type_slug = "chat-not-yours"
    title = "This chat belongs to someone else"


class ChatAlreadyTaken(Conflict):
    type_slug = "chat-already-taken"
    title = "Another agent has taken this chat"


class ChatClosed(Conflict):
    type_slug = "chat-closed"
    title = "The chat is closed"


class ChatNotTaken(Conflict):
    type_slug = "chat-not-taken"
    title = "No agent has taken this chat yet"


class MomentNotCurrent(InvalidInput):
    type_slug = "chat-moment-not-current"
    title = "This moment does not open a chat for the member"


class UnknownChatAgent(NotFound):
    type_slug = "unknown-chat-agent"
    title = "Unknown chat agent"
