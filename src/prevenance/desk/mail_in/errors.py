"""Errors of the desk's e-mail; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, InvalidInput, NotFound


class UnknownMailMessage(NotFound):
    type_slug = "unknown-mail-message"
    title = "Unknown e-mail message"


class UnknownAttachment(NotFound):
    type_slug = "unknown-mail-attachment"
    title = "Unknown attachment (or not kept: over the size cap)"


class MailStateConflict(Conflict):
    type_slug = "mail-message-state"
    title = "The message is not in a state that allows this"


class NoAddressToAnswer(InvalidInput):
    type_slug = "no-address-to-answer"
    title = "The member has no e-mail address an answer can go to"
