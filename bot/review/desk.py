"""Curation: the review queue for corrections, reviewers' decisions, and correction recall.

Platform-neutral and synchronous: Slack's buttons (in a worker thread) and `chatbot review` (in a
terminal) call the same functions, and the database decides races between them.

    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["U2"]), knowledge=kb)
    desk.queue()                                        # pending corrections, most urgent first
    desk.decide(12, reviewer="U2", decision="approve")  # approved: indexed at once as knowledge
    desk.recheck(report.changed_ids)                    # after an ingest: corrections back to review

Correction recall: an approved correction becomes a document of its own in the knowledge base (the
question and the corrected answer, titled "Reviewed correction #12", its approvers and date in the
metadata), so the next question like it retrieves it and the answer cites it, before any retrain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.errors import NotAReviewer
from feedback import queries, store
from feedback.db import Database
from feedback.models import utcnow
from feedback.queries import ReviewCase

log = logging.getLogger(__name__)

CORRECTION_SOURCE = "correction:"
# Every surface asks for a rejection's reason in these words (the author is sent it).
REASON_NEEDED = "Say why it is rejected: the author is told."
CORRECTION_KIND = "reviewed_correction"


class KnowledgeWriter(Protocol):
    """What curation needs of the knowledge base (`bot.knowledge.KnowledgeBase` is one)."""

    def add_document(
        self,
        text: str,
        *,
        source: str,
        title: str,
        url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        fmt: str = "markdown",
    ) -> list[str]: ...

    def remove_document(self, source: str) -> int: ...


@dataclass(frozen=True)
class ReviewPolicy:
    reviewers: frozenset[str]
    approvals_required: int = 1
    recall: bool = True  # index approved corrections at once

    @classmethod
    def of(
        cls,
        *,
        reviewers: Iterable[str],
        admins: Iterable[str] = (),
        approvals_required: int = 1,
        recall: bool = True,
    ) -> ReviewPolicy:
        """Reviewers are `reviewers`, or the admins when that list is empty (as REVIEWERS says)."""
        people = frozenset(r for r in reviewers if r) or frozenset(a for a in admins if a)
        return cls(people, approvals_required, recall)


@dataclass(frozen=True)
class Outcome:
    """A decision recorded: the case as it is now, and what followed from it."""

    case: ReviewCase
    decided: bool  # this decision approved or rejected the correction
    indexed: bool  # it is now knowledge the bot answers from


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def correction_source(correction_id: int) -> str:
    return f"{CORRECTION_SOURCE}{correction_id}"


def correction_title(correction_id: int) -> str:
    return f"Reviewed correction #{correction_id}"


def correction_document(question: str, corrected_answer: str) -> str:
    return f"Question: {question.strip()}\n\nAnswer: {corrected_answer.strip()}"


# Takes personal data out of a text before it is indexed; the second argument is what the company
# published (the passages the answer was given), which passes as it is.
Scrub = Callable[[str, Sequence[str]], str]


class ReviewDesk:
    def __init__(
        self,
        database: Database,
        policy: ReviewPolicy,
        *,
        knowledge: KnowledgeWriter | None = None,
        scrub: Scrub | None = None,
    ) -> None:
        self.database = database
        self.policy = policy
        self.knowledge = knowledge
        self.scrub = scrub

    def is_reviewer(self, user_id: str) -> bool:
        return user_id in self.policy.reviewers

    # -- reading -----------------------------------------------------------------------------

    def queue(self) -> list[ReviewCase]:
        with self.database.reader() as session:
            return queries.review_queue(session)

    def agreement(self) -> queries.Agreement:
        """How often each reviewer agreed with the decisions on sampled cases."""
        with self.database.reader() as session:
            return queries.reviewer_agreement(session)

    def case(self, correction_id: int) -> ReviewCase | None:
        with self.database.reader() as session:
            return queries.review_case(session, correction_id)

    def without_card(self, *, older_than: timedelta = timedelta(seconds=30)) -> list[ReviewCase]:
        """Pending corrections that have no review card yet: submitted on another platform or sent
        back for review by another process (a just-submitted one gets its card from its submitter)."""
        cutoff = utcnow() - older_than
        return [
            case
            for case in self.queue()
            if case.correction.card_ref is None
            and (case.correction.stale_reason is not None or _aware(case.correction.created_at) < cutoff)
        ]

    # -- writing -----------------------------------------------------------------------------

    def submit(self, *, answer_id: int, author: str, text: str) -> ReviewCase:
        """Store a proposed correction (any platform's); the case to show reviewers."""
        with self.database.writer() as session:
            correction = store.submit_correction(session, answer_id=answer_id, author=author, text=text)
        case = self.case(correction.id or 0)
        assert case is not None
        return case

    def decide(
        self,
        correction_id: int,
        *,
        reviewer: str,
        decision: str,
        reason: str | None = None,
        edited_text: str | None = None,
        choice: str | None = None,
    ) -> Outcome:
        """One reviewer's approve or reject (an edit approves the edited text; on a sampled case
        `choice` says what the approval keeps: "bot", "draft" or "edit"). Refused with
        `NotAReviewer` for anyone else, and with the store's errors for a closed correction or a
        second vote; nothing is written then."""
        if not self.is_reviewer(reviewer):
            raise NotAReviewer(reviewer)
        with self.database.writer() as session:
            store.review_correction(
                session,
                correction_id=correction_id,
                reviewer=reviewer,
                decision=decision,
                reason=reason,
                edited_text=edited_text,
                approvals_required=self.policy.approvals_required,
                choice=choice,
            )
        case = self.case(correction_id)
        assert case is not None
        decided = case.correction.status != "pending"  # it was pending, or the store refused
        indexed = decided and case.correction.status == "approved" and self._index(case)
        return Outcome(case, decided, indexed)

    def forget(self, user_id: str) -> store.Forgotten:
        """A privacy request: the person's questions, answers, votes and corrections deleted (their
        review cases with them) and any of those corrections' knowledge withdrawn."""
        with self.database.writer() as session:
            forgotten = store.forget_person(session, user_id=user_id)
        for correction_id in forgotten.corrections:
            self._withdraw(correction_id)
        log.info("forgot %s: %s", user_id, forgotten)
        return forgotten

    def set_card(self, correction_id: int, *, channel: str, ref: str) -> None:
        with self.database.writer() as session:
            store.attach_review_card(session, correction_id=correction_id, channel=channel, ref=ref)

    def recheck(self, changed_passage_ids: Iterable[str]) -> list[int]:
        """Send back for review every pending or approved correction whose answer cited a passage
        of a page that changed (`IngestReport.changed_ids`), withdrawing its knowledge until it is
        approved again. Returns their ids."""
        changed = set(changed_passage_ids)
        with self.database.reader() as session:
            affected = queries.corrections_citing(session, changed)
        reopened = []
        for correction, answer in affected:
            titles = sorted(
                {s.get("title") or s.get("source", "") for s in answer.sources if s.get("id") in changed}
            )
            pages = ", ".join(f"“{t}”" for t in titles if t) or "a page it relied on"
            reason = f"The source changed since it was reviewed: {pages}. Check it still holds."
            with self.database.writer() as session:
                store.reopen_correction(session, correction_id=correction.id or 0, reason=reason)
            self._withdraw(correction.id or 0)
            reopened.append(correction.id or 0)
        if reopened:
            log.info("corrections sent back for review after a source changed: %s", reopened)
        return reopened

    def reindex(self) -> int:
        """Index every approved correction again (after the index was rebuilt, or recall was
        switched on later); replaces what was there. Returns how many are indexed."""
        with self.database.reader() as session:
            rows = queries.approved_corrections(session)
            cases = [queries.review_case(session, c.id or 0) for c, _, _ in rows]
        return sum(1 for case in cases if case is not None and self._index(case))

    # -- knowledge ---------------------------------------------------------------------------

    def _index(self, case: ReviewCase) -> bool:
        if not self.policy.recall or self.knowledge is None:
            return False
        correction = case.correction
        decided = correction.decided_at or utcnow()
        metadata = {
            "kind": CORRECTION_KIND,
            "correction_id": correction.id,
            "answer_id": case.answer.id,
            "approved_by": case.approvals,
            "approved_at": decided.isoformat(),
        }
        document = correction_document(case.question.text, correction.text)
        try:
            if self.scrub is not None:  # a person's words, indexed for every later question to see
                published = [m["content"] for m in case.answer.prompt or [] if m.get("role") == "system"]
                document = self.scrub(document, published)
            self.knowledge.add_document(
                document,
                source=correction_source(correction.id or 0),
                title=correction_title(correction.id or 0),
                metadata=metadata,
                fmt="text",
            )
        except Exception:  # the approval stands; `chatbot review --reindex` can add it later
            log.exception("approved correction %s could not be indexed", correction.id)
            return False
        return True

    def _withdraw(self, correction_id: int) -> None:
        if self.knowledge is None:
            return
        try:
            self.knowledge.remove_document(correction_source(correction_id))
        except Exception:
            log.exception("correction %s could not be withdrawn from the knowledge base", correction_id)
