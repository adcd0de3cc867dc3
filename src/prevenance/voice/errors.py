"""Errors of the voice domain; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, InvalidInput, NotFound


class UnknownSuggestion(NotFound):
    type_slug = "unknown-suggestion"
    title = "Unknown suggestion"


class UnknownScorecard(NotFound):
    type_slug = "unknown-scorecard"
    title = "No published scorecard for this month and version"


class InvalidImport(InvalidInput):
    """A CSV file with faulty lines: nothing of it is written; ``errors`` lists line and reason."""

    type_slug = "invalid-import"
    title = "The file has faulty lines; nothing was imported"


class AnswerConflict(Conflict):
    type_slug = "answer-id-reused"
    title = "An answer with this id already exists with other values"


class NothingToPublish(Conflict):
    type_slug = "empty-scorecard"
    title = "No answers this month: nothing to publish"


class SurveyLinkError(Exception):
    """A survey link that cannot be used: ``kind`` is ``invalid``, ``expired`` or ``used``; the survey
    page turns it into an HTML page, not a problem document."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind
