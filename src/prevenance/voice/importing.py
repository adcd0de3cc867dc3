"""Import of survey answers from another channel (post-call phone surveys), streamed in chunks.

The file is read once, a chunk at a time: each chunk is checked (lines, members, ids already
imported) and, while no line of the file has failed, written with multi-row statements in the
caller's transaction. A faulty line anywhere stops the writing, the rest of the file is still checked
so every fault is listed, and ``InvalidImport`` rolls the whole transaction back: all lines or none,
with memory bounded by the chunk, not the file (plus 12 bytes per line to spot a repeated id).

Each answer is recorded as the survey page records one (``service.store_answer``): the answer, its
topics, its suggestion and a ``survey.answered`` event with the same body, in bulk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

import numpy as np
from sqlalchemy import Table
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.bulk import insert_many, tune_for_bulk
from prevenance.common.ids import fingerprint, iso_z
from prevenance.common.periods import month_of
from prevenance.common.rules import FieldError
from prevenance.customers import service as customers
from prevenance.voice import repository, rules, topics
from prevenance.voice.errors import InvalidImport
from prevenance.voice.tables import Answer, AnswerTopic, Suggestion

CHUNK = 5000
"""Lines checked and written together: large enough for multi-row statements to pay, small enough
that memory does not depend on the file."""
MAX_ERRORS = 1000
MEMBER_CACHE = 100_000
"""Members kept between chunks (``MemberCache``): some 25 MB at most."""
BULK_CACHE_MIB = 64
"""SQLite page cache of the import's connection: the answers' and events' random-key indexes stay in
memory far longer than in the default 2 MiB (measured, 1,000,000 answers: the database's own insert
time 61 s with 2 MiB, 42 s with 64 MiB, 35 s with 256 MiB), with a fixed bound on the memory it adds."""
_ANSWERS: Table = Answer.__table__  # type: ignore[assignment]
_TOPICS: Table = AnswerTopic.__table__  # type: ignore[assignment]
_SUGGESTIONS: Table = Suggestion.__table__  # type: ignore[assignment]


class SeenIds:
    """The ids met so far in the file, as 64-bit digests with their line, sorted: 12 bytes a line.

    Two different ids sharing a digest (odds about n²/2^65, 3 in a million for 10 million lines)
    would be reported as a repeated id: the file is refused, never wrongly written."""

    def __init__(self) -> None:
        self.digests = np.empty(0, dtype=np.uint64)
        self.lines = np.empty(0, dtype=np.int64)

    @staticmethod
    def digest(answer_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(answer_id.encode(), digest_size=8).digest(), "little")

    def first_line(self, digests: np.ndarray) -> np.ndarray:
        """For each digest, the line it was first seen on, or 0."""
        if not self.digests.size:
            return np.zeros(digests.size, dtype=np.int64)
        where = np.searchsorted(self.digests, digests).clip(0, self.digests.size - 1)
        return np.where(self.digests[where] == digests, self.lines[where], 0)

    def add(self, digests: np.ndarray, lines: np.ndarray) -> None:
        merged = np.concatenate((self.digests, digests))
        order = np.argsort(merged, kind="stable")
        self.digests, self.lines = merged[order], np.concatenate((self.lines, lines))[order]


class MemberCache(dict[str, customers.MemberSummary]):
    """The members met so far in the file, read once for the whole import (an answers file names the
    same members again and again: 1,000,000 answers over 20,000 members). Bounded: past
    ``MEMBER_CACHE`` members it starts again from the chunk's own, so memory does not grow with the
    file. The import is one transaction: on SQLite the members cannot change under it (it holds the
    write lock); on PostgreSQL a member changed by another transaction meanwhile is read as it was
    when the import first met it."""

    def read(self, session: Session, refs: set[str]) -> None:
        """Make sure every known member of ``refs`` is here (unknown refs stay absent)."""
        missing = refs - self.keys()
        if len(self) + len(missing) > MEMBER_CACHE:
            self.clear()
            missing = refs
        if missing:
            self.update(customers.list_summaries_by_refs(session, refs=sorted(missing)))


def _member_refusal(member: customers.MemberSummary | None, ref: str) -> str | None:
    """Why a line cannot be recorded for this member, or None: unknown, or erased (an erased member
    is never written to again; an answer under the pseudonym the erasure left would lay free text
    back on them)."""
    if member is None:
        return f"unknown member {ref!r}"
    if customers.is_erased(member):
        return f"member {ref!r} was erased and is never written to again"
    return None


def _body(
    answer_id: str, item: rules.ImportedAnswer, member: customers.MemberSummary
) -> tuple[dict[str, Any], str]:
    """The answer's body, as ``survey.answered`` carries it, and its fingerprint (of the body but
    its id: the fingerprint hashes sorted keys, so the id is put first afterwards)."""
    values = _values(item, member)
    return {"id": answer_id, **values}, fingerprint(values)


def _values(item: rules.ImportedAnswer, member: customers.MemberSummary) -> dict[str, Any]:
    return {
        "invitation_id": None,
        "contact_id": item.contact_id,
        "member_id": member.id,
        "agent": item.agent,
        "team": item.team,
        "channel": item.channel,
        "reason": item.reason,
        "product": item.product or member.product,
        "country": item.country or member.country,
        "month": month_of(item.answered_at),
        "answered_at": iso_z(item.answered_at),
        "recommend": item.recommend,
        "interaction": item.interaction,
        "comment": item.comment,
        "suggestion": item.suggestion,
        "language": item.language or member.language,
        "source": "import",
    }


def _write(
    session: Session, bodies: list[tuple[dict[str, Any], rules.ImportedAnswer, str]], now: datetime
) -> None:
    """Answers, topics, suggestions and ``survey.answered`` events of a chunk, a few multi-row
    statements each (``common.bulk.insert_many``)."""
    answers: list[dict[str, Any]] = []
    topic_rows: list[dict[str, Any]] = []
    suggestions: list[dict[str, Any]] = []
    for body, item, print_ in bodies:
        answers.append(
            {
                **body,
                "answered_at": item.answered_at,
                "fingerprint": print_,
                "created_at": now,
            }
        )
        for part, text in (("comment", item.comment), ("suggestion", item.suggestion)):
            if text:
                topic_rows += [
                    {"answer_id": body["id"], "part": part, "topic": topic, "month": body["month"]}
                    for topic in sorted(set(topics.tag(text, body["language"])))
                ]
        if item.suggestion:
            suggestions.append(
                {
                    "id": "sug_" + hashlib.sha256(body["id"].encode()).hexdigest()[:32],
                    "answer_id": body["id"],
                    "text": item.suggestion,
                    "language": body["language"],
                    "country": body["country"],
                    "month": body["month"],
                    "status": "new",
                    "created_at": now,
                    "updated_at": now,
                }
            )
    connection = session.connection()
    insert_many(connection, _ANSWERS, answers)
    insert_many(connection, _TOPICS, topic_rows)
    insert_many(connection, _SUGGESTIONS, suggestions)
    outbox.emit_many(session, type="survey.answered", payloads=[body for body, _, _ in bodies], now=now)


def import_answers(
    session: Session,
    *,
    rows: Iterable[Mapping[str, str | None]],
    now: datetime,
    progress: Callable[[int], None] | None = None,
    first_line: int = 2,
    chunk: int = CHUNK,
) -> dict[str, int]:
    """Import answers from another channel (post-call phone surveys): all lines or none.

    Each line is checked (line numbers count the header as line 1); any faulty line rejects the file
    with every line and reason (``InvalidImport``, the first ``MAX_ERRORS`` listed). An id already
    imported with the same values is skipped, with other values it is a faulty line: a re-run of the
    file adds nothing. ``rows`` is read once, ``chunk`` lines at a time.
    """
    tune_for_bulk(session, cache_mib=BULK_CACHE_MIB)
    seen = SeenIds()
    members = MemberCache()
    errors: list[dict[str, Any]] = []
    faults = imported = unchanged = lines = 0
    source = iter(rows)
    while batch := list(islice(source, chunk)):
        start = first_line + lines
        lines += len(batch)
        chunk_errors: list[dict[str, Any]] = []
        parsed: list[tuple[int, rules.ImportedAnswer]] = []
        for offset, raw in enumerate(batch):
            try:
                parsed.append((start + offset, rules.parse_import_row(raw)))
            except FieldError as error:
                chunk_errors.append({"line": start + offset, "field": error.field, "reason": str(error)})
        members.read(session, {item.member_ref for _, item in parsed})
        known: list[tuple[int, rules.ImportedAnswer]] = []
        for line, item in parsed:
            if (refusal := _member_refusal(members.get(item.member_ref), item.member_ref)) is None:
                known.append((line, item))
            else:
                chunk_errors.append({"line": line, "field": "member_ref", "reason": refusal})
        ids = [f"csv:{item.id}" for _, item in known]
        digests = np.fromiter((SeenIds.digest(i) for i in ids), dtype=np.uint64, count=len(ids))
        earlier = seen.first_line(digests)
        existing = repository.answer_fingerprints(session, ids)
        in_chunk: dict[str, int] = {}
        fresh: list[tuple[dict[str, Any], rules.ImportedAnswer, str]] = []
        for (line, item), answer_id, first in zip(known, ids, earlier.tolist(), strict=True):
            first = first or in_chunk.get(answer_id, 0)
            if first:
                chunk_errors.append(
                    {"line": line, "field": "id", "reason": f"id repeated (first on line {first})"}
                )
                continue
            in_chunk[answer_id] = line
            body, print_ = _body(answer_id, item, members[item.member_ref])
            if answer_id in existing:
                if existing[answer_id] != print_:
                    chunk_errors.append(
                        {
                            "line": line,
                            "field": "id",
                            "reason": f"id {item.id!r} was imported with other values",
                        }
                    )
                else:
                    unchanged += 1
                continue
            fresh.append((body, item, print_))
        seen.add(
            np.fromiter((SeenIds.digest(i) for i in in_chunk), dtype=np.uint64, count=len(in_chunk)),
            np.fromiter(in_chunk.values(), dtype=np.int64, count=len(in_chunk)),
        )
        faults += len(chunk_errors)
        if len(errors) < MAX_ERRORS:
            errors += sorted(chunk_errors, key=lambda e: e["line"])[: MAX_ERRORS - len(errors)]
        if not faults and fresh:
            _write(session, fresh, now)
            imported += len(fresh)
        if progress is not None:
            progress(lines)
    if faults:
        raise InvalidImport(
            f"{faults} faulty line(s), first on line {errors[0]['line']}: {errors[0]['reason']}",
            field=errors[0]["field"],
            errors=errors,
        )
    return {"imported": imported, "unchanged": unchanged, "lines": lines}
