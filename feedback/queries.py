"""Reads from the store. Nothing here writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from feedback import ids
from feedback.models import (
    AdapterChange,
    AdapterVersion,
    AdminRefusal,
    Answer,
    Canary,
    Correction,
    Erasure,
    OptOut,
    Question,
    RetrainRun,
    Review,
    Vote,
)


def active_adapter(session: Session) -> AdapterVersion | None:
    return session.exec(select(AdapterVersion).where(AdapterVersion.status == "active")).first()


def get_adapter(session: Session, name: str) -> AdapterVersion | None:
    return session.exec(select(AdapterVersion).where(AdapterVersion.name == name)).first()


def list_adapters(session: Session) -> list[AdapterVersion]:
    return list(session.exec(select(AdapterVersion).order_by(col(AdapterVersion.id))))


def loaded_versions(session: Session, keep: int) -> list[AdapterVersion]:
    """The versions a model server should keep loaded: the active one, then the most recently
    retired ones (instant rollback), `keep` in all; and an open canary's candidate besides."""
    active = active_adapter(session)
    retired = select(AdapterVersion).where(
        AdapterVersion.status == "retired", col(AdapterVersion.retired_at).is_not(None)
    )
    recent = list(session.exec(retired.order_by(col(AdapterVersion.retired_at).desc()).limit(keep)))
    wanted = ([active] if active else []) + recent[: keep - (1 if active else 0)]
    canary = open_canary(session)
    candidate = get_adapter(session, canary.candidate) if canary is not None else None
    return wanted + ([candidate] if candidate is not None and candidate not in wanted else [])


def rollback_target(session: Session) -> tuple[bool, str | None]:
    """Where a rollback would go: (possible, adapter name or None for the base model): what served
    before the active adapter was promoted. `store.rollback_adapter` switches to it."""
    current = active_adapter(session)
    if current is None:
        return False, None
    promoted = session.exec(
        select(AdapterChange)
        .where(AdapterChange.action == "promote", AdapterChange.to_name == current.name)
        .order_by(col(AdapterChange.id).desc())
    ).first()
    return True, promoted.from_name if promoted else current.parent


def feedback_high_water(session: Session) -> dict[str, int]:
    """The newest answer, vote and correction ids: the feedback a dataset built now can include."""
    return {
        "last_answer_id": session.exec(select(func.max(Answer.id))).one() or 0,
        "last_vote_id": session.exec(select(func.max(Vote.id))).one() or 0,
        "last_correction_id": session.exec(select(func.max(Correction.id))).one() or 0,
    }


def adapter_history(session: Session, limit: int = 20) -> list[AdapterChange]:
    stmt = select(AdapterChange).order_by(col(AdapterChange.id).desc()).limit(limit)
    return list(session.exec(stmt))


def recent_refusals(session: Session, limit: int = 20) -> list[AdminRefusal]:
    """The newest refused admin attempts first."""
    return list(session.exec(select(AdminRefusal).order_by(col(AdminRefusal.id).desc()).limit(limit)))


def get_answer(session: Session, answer_id: int) -> Answer | None:
    return ids.get(session, Answer, answer_id)


def get_question(session: Session, question_id: int) -> Question | None:
    return ids.get(session, Question, question_id)


def find_answer_by_reply(
    session: Session, *, platform: str, reply_channel: str, reply_ref: str
) -> Answer | None:
    stmt = select(Answer).where(
        Answer.platform == platform, Answer.reply_channel == reply_channel, Answer.reply_ref == reply_ref
    )
    return session.exec(stmt).first()


def votes_for(session: Session, answer_id: int) -> list[Vote]:
    if not ids.in_range(answer_id):
        return []
    return list(session.exec(select(Vote).where(Vote.answer_id == answer_id).order_by(col(Vote.id))))


def vote_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Vote)).one()


def corrections(session: Session, *, status: str | None = None) -> list[Correction]:
    stmt = select(Correction).order_by(col(Correction.id))
    if status is not None:
        stmt = stmt.where(Correction.status == status)
    return list(session.exec(stmt))


def recent_runs(session: Session, limit: int = 10) -> list[RetrainRun]:
    return list(session.exec(select(RetrainRun).order_by(col(RetrainRun.id).desc()).limit(limit)))


def opted_out_users(session: Session) -> set[str]:
    return set(session.exec(select(OptOut.user_id)).all())


def approved_corrections(session: Session) -> list[tuple[Correction, Answer, Question]]:
    stmt = (
        select(Correction, Answer, Question)
        .join(Answer, col(Answer.id) == Correction.answer_id)
        .join(Question, col(Question.id) == Answer.question_id)
        .where(Correction.status == "approved")
        .order_by(col(Correction.id))
    )
    return [(c, a, q) for c, a, q in session.exec(stmt)]


def voted_answers(session: Session) -> list[tuple[Answer, Question, int]]:
    """Answers with a non-zero vote balance and no pending or approved correction,
    with that balance (positive: liked, negative: disliked)."""
    corrected = select(Correction.answer_id).where(col(Correction.status).in_(("pending", "approved")))
    net = func.sum(Vote.value).label("net")
    stmt = (
        select(Answer, Question, net)
        .join(Vote, col(Vote.answer_id) == Answer.id)
        .join(Question, col(Question.id) == Answer.question_id)
        .where(col(Answer.id).not_in(corrected))
        .group_by(col(Answer.id), col(Question.id))
        .having(net != 0)
        .order_by(col(Answer.id))
    )
    return [(a, q, int(n)) for a, q, n in session.exec(stmt)]


def pending_run(session: Session) -> RetrainRun | None:
    """The run that is queued or running, if any (the oldest)."""
    stmt = (
        select(RetrainRun)
        .where(col(RetrainRun.status).in_(("queued", "running")))
        .order_by(col(RetrainRun.id))
    )
    return session.exec(stmt).first()


def queued_runs(session: Session) -> list[RetrainRun]:
    stmt = select(RetrainRun).where(RetrainRun.status == "queued").order_by(col(RetrainRun.id))
    return list(session.exec(stmt))


def last_completed_run(session: Session) -> RetrainRun | None:
    """The latest run that went through the feedback: promoted, rejected, or skipped (nothing new)."""
    stmt = (
        select(RetrainRun)
        .where(col(RetrainRun.status).in_(("promoted", "rejected", "skipped")))
        .order_by(col(RetrainRun.id).desc())
    )
    return session.exec(stmt).first()


def new_examples_since(session: Session, since: datetime | None) -> int:
    """Training examples that arrived after `since` (everything when None): corrections approved
    since then, and answers whose votes were cast or changed since then."""
    approved = select(func.count()).select_from(Correction).where(Correction.status == "approved")
    voted = select(func.count(func.distinct(Vote.answer_id))).select_from(Vote)
    if since is not None:
        approved = approved.where(col(Correction.decided_at) > since)
        voted = voted.where(col(Vote.updated_at) > since)
    return int(session.exec(approved).one()) + int(session.exec(voted).one())


def correction_counts(session: Session) -> dict[str, int]:
    stmt = select(Correction.status, func.count()).group_by(col(Correction.status))
    return {status: int(n) for status, n in session.exec(stmt)}


def votes_by_adapter(session: Session) -> list[tuple[str, int, int]]:
    """(adapter, thumbs up, thumbs down) for every adapter that answered something voted on."""
    up = func.sum(case((col(Vote.value) > 0, 1), else_=0))
    down = func.sum(case((col(Vote.value) < 0, 1), else_=0))
    stmt = (
        select(Answer.adapter, up, down)
        .join(Vote, col(Vote.answer_id) == Answer.id)
        .group_by(col(Answer.adapter))
        .order_by(col(Answer.adapter))
    )
    return [(adapter, int(u), int(d)) for adapter, u, d in session.exec(stmt)]


# --- the review queue ------------------------------------------------------------------------

# Review priority: how unsure the model was (1 - confidence; 0.5 when unknown), plus this much for
# each 👎 the answer got, so a widely disliked answer overtakes a merely unsure one.
DOWNVOTE_WEIGHT = 0.1
UNKNOWN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class ReviewCase:
    """A correction with what a reviewer needs to judge it."""

    correction: Correction
    answer: Answer
    question: Question
    reviews: list[Review]  # the current review round's, oldest first
    downvotes: int

    @property
    def priority(self) -> float:
        confidence = UNKNOWN_CONFIDENCE if self.answer.confidence is None else self.answer.confidence
        return (1.0 - confidence) + DOWNVOTE_WEIGHT * self.downvotes

    @property
    def approvals(self) -> list[str]:
        return [r.reviewer for r in self.reviews if r.decision == "approve"]

    @property
    def why(self) -> list[str]:
        """Why it is in the queue, in words for reviewers."""
        if self.correction.origin != "sampled":
            reasons = ["a person suggested a correction"]
        else:
            reasons = [QUEUED_BECAUSE.get(r, r) for r in self.correction.reasons] or ["sampled for review"]
        if self.downvotes and "downvoted" not in self.correction.reasons:
            reasons.append(f"{self.downvotes} 👎")
        return reasons

    @property
    def kept(self) -> dict[str, list[str]]:
        """A sampled case's approvals by what each keeps ("the bot's answer", "the draft", "an edit"):
        more than one entry means the reviewers disagree."""
        kept: dict[str, list[str]] = {}
        for review in self.reviews:
            if review.decision == "approve" and review.choice is not None:
                what = {"bot": "the bot's answer", "draft": "the draft"}.get(review.choice, "an edit")
                kept.setdefault(what, []).append(review.reviewer)
        return kept

    @property
    def disagreement(self) -> bool:
        """Reviewers of this round approved different things (the answer, the draft, other edits)."""
        draft = self.correction.draft
        return len({approval_key(r, draft) for r in self.reviews if r.choice is not None} - {None}) > 1


QUEUED_BECAUSE = {
    "low_confidence": "low confidence",
    "low_relevance": "the passages may not hold the answer",
    "downvoted": "👎",
    "teacher_disagrees": "the teacher's draft disagrees",
}


def review_queue(session: Session) -> list[ReviewCase]:
    """Pending corrections, those most in need of a human first: lowest-confidence answers and
    answers with the most 👎 (see `DOWNVOTE_WEIGHT`), then the oldest."""
    cases = _cases(session, _corrections_with_answers(session, ("pending",)))
    return sorted(cases, key=lambda case: (-case.priority, case.correction.id or 0))


def review_case(session: Session, correction_id: int) -> ReviewCase | None:
    if not ids.in_range(correction_id):
        return None
    cases = _cases(session, _corrections_with_answers(session, None, correction_id=correction_id))
    return cases[0] if cases else None


def corrections_citing(session: Session, passage_ids: Iterable[str]) -> list[tuple[Correction, Answer]]:
    """Pending or approved corrections of answers that cited any of `passage_ids`."""
    wanted = set(passage_ids)
    if not wanted:
        return []
    rows = _corrections_with_answers(session, ("pending", "approved"))
    return [(c, a) for c, a, _ in rows if wanted.intersection(a.passage_ids)]


def _corrections_with_answers(
    session: Session, statuses: Iterable[str] | None, *, correction_id: int | None = None
) -> list[tuple[Correction, Answer, Question]]:
    stmt = (
        select(Correction, Answer, Question)
        .join(Answer, col(Answer.id) == Correction.answer_id)
        .join(Question, col(Question.id) == Answer.question_id)
        .order_by(col(Correction.id))
    )
    if statuses is not None:
        stmt = stmt.where(col(Correction.status).in_(tuple(statuses)))
    if correction_id is not None:
        stmt = stmt.where(Correction.id == correction_id)
    return [(c, a, q) for c, a, q in session.exec(stmt)]


def _cases(session: Session, rows: list[tuple[Correction, Answer, Question]]) -> list[ReviewCase]:
    if not rows:
        return []
    reviews: dict[int, list[Review]] = {}
    in_rows = col(Review.correction_id).in_([c.id for c, _, _ in rows])
    for review in session.exec(select(Review).where(in_rows).order_by(col(Review.id))):
        reviews.setdefault(review.correction_id, []).append(review)
    # 👎 on the corrected answer, and on the reviewed answers each correction was served as.
    down = (
        select(Answer.id, Answer.reviewed_correction_id, func.count())
        .join(Vote, col(Vote.answer_id) == Answer.id)
        .where(
            col(Answer.id).in_({a.id for _, a, _ in rows})
            | col(Answer.reviewed_correction_id).in_({c.id for c, _, _ in rows}),
            col(Vote.value) < 0,
        )
        .group_by(col(Answer.id), col(Answer.reviewed_correction_id))
    )
    by_answer: dict[int, int] = {}
    by_correction: dict[int, int] = {}
    for answer_id, served_from, n in session.exec(down):
        by_answer[answer_id or 0] = int(n)
        if served_from is not None:
            by_correction[served_from] = by_correction.get(served_from, 0) + int(n)
    return [
        ReviewCase(
            correction=c,
            answer=a,
            question=q,
            reviews=[r for r in reviews.get(c.id or 0, []) if r.review_round == c.review_round],
            downvotes=by_answer.get(a.id or 0, 0) + by_correction.get(c.id or 0, 0),
        )
        for c, a, q in rows
    ]


@dataclass(frozen=True)
class LiveCorrection:
    """An approved correction as the bot serves it: the question it answers, the corrected text,
    who approved it (this review round) and when, and the pages the corrected answer cited."""

    correction_id: int
    question: str
    text: str
    approved_by: list[str]
    approved_at: datetime | None
    sources: list[dict[str, Any]]


def live_corrections(session: Session) -> list[LiveCorrection]:
    """Every approved correction, oldest first: read per question, so a correction withdrawn or
    rejected in any process stops being served at once."""
    rows = approved_corrections(session)
    if not rows:
        return []
    approvals: dict[int, list[str]] = {}
    rounds = {c.id: c.review_round for c, _, _ in rows}
    stmt = (
        select(Review)
        .where(col(Review.correction_id).in_(list(rounds)), Review.decision == "approve")
        .order_by(col(Review.id))
    )
    for review in session.exec(stmt):
        if review.review_round == rounds[review.correction_id]:
            approvals.setdefault(review.correction_id, []).append(review.reviewer)
    return [
        LiveCorrection(
            correction_id=c.id or 0,
            question=q.text,
            text=c.text,
            approved_by=approvals.get(c.id or 0, []),
            approved_at=c.decided_at,
            sources=list(a.sources),
        )
        for c, a, q in rows
    ]


# --- quality, for the console's charts and the bot's metrics -----------------------------------


def vote_totals(session: Session) -> tuple[int, int]:
    """(thumbs up, thumbs down) stored now, every platform."""
    up = func.sum(case((col(Vote.value) > 0, 1), else_=0))
    down = func.sum(case((col(Vote.value) < 0, 1), else_=0))
    u, d = session.exec(select(up, down)).one()
    return int(u or 0), int(d or 0)


def _day(column: object) -> str:
    """A date as 'YYYY-MM-DD' whichever backend: SQLite's date() returns text, PostgreSQL's a date."""
    return str(column)[:10]


def votes_by_day(session: Session, *, since: datetime) -> list[tuple[str, int, int]]:
    """(day, thumbs up, thumbs down) for the votes last cast or changed on each day since `since`,
    oldest first; days without votes are left out."""
    day = func.date(Vote.updated_at)
    up = func.sum(case((col(Vote.value) > 0, 1), else_=0))
    down = func.sum(case((col(Vote.value) < 0, 1), else_=0))
    stmt = select(day, up, down).where(col(Vote.updated_at) >= since).group_by(day).order_by(day)
    return [(_day(d), int(u), int(n)) for d, u, n in session.exec(stmt)]


def answers_by_day(session: Session, *, since: datetime) -> list[tuple[str, int]]:
    """(day, answers given) since `since`, oldest first; days without answers are left out."""
    day = func.date(Answer.created_at)
    stmt = select(day, func.count()).where(col(Answer.created_at) >= since).group_by(day).order_by(day)
    return [(_day(d), int(n)) for d, n in session.exec(stmt)]


def most_downvoted(session: Session, *, limit: int = 10) -> list[tuple[Question, Answer, int]]:
    """The answers with the most 👎, with their question, most first (then the newest)."""
    down = func.count().label("down")
    stmt = (
        select(Question, Answer, down)
        .join(Vote, col(Vote.answer_id) == Answer.id)
        .join(Question, col(Question.id) == Answer.question_id)
        .where(col(Vote.value) < 0)
        .group_by(col(Answer.id), col(Question.id))
        .order_by(down.desc(), col(Answer.id).desc())
        .limit(limit)
    )
    return [(q, a, int(n)) for q, a, n in session.exec(stmt)]


def most_asked(session: Session, *, since: datetime, limit: int = 4, at_least: int = 2) -> list[str]:
    """The questions asked most often since `since` (the same words in any case, `at_least` times)
    and answered from the documents or by a reviewed answer, most first."""
    key = func.lower(func.trim(Question.text))
    asked = func.count(func.distinct(Question.id)).label("asked")
    answered = (col(Answer.confidence).is_not(None)) | (col(Answer.reviewed_correction_id).is_not(None))
    stmt = (
        select(func.min(Question.text), asked)
        .join(Answer, col(Answer.question_id) == Question.id)
        .where(col(Question.created_at) >= since, answered)
        .group_by(key)
        .having(asked >= at_least)
        .order_by(asked.desc(), key)
        .limit(limit)
    )
    return [str(text).strip() for text, _ in session.exec(stmt)]


def sampling_candidates(session: Session, *, since: datetime) -> list[tuple[Answer, Question, int]]:
    """Answers since `since` that nobody corrected and no case holds yet, from people who did not opt
    out, with their question and 👎 count: model answers (a confidence) and any answer voted down.
    Reviewed answers (an approved correction served verbatim) are left out."""
    down = func.coalesce(func.sum(case((col(Vote.value) < 0, 1), else_=0)), 0).label("down")
    has_case = select(Correction.id).where(Correction.answer_id == Answer.id).exists()
    opted_out = select(OptOut.user_id).where(OptOut.user_id == Question.user_id).exists()
    stmt = (
        select(Answer, Question, down)
        .join(Question, col(Question.id) == Answer.question_id)
        .join(Vote, col(Vote.answer_id) == Answer.id, isouter=True)
        .where(
            col(Answer.created_at) >= since,
            col(Answer.reviewed_correction_id).is_(None),
            ~has_case,
            ~opted_out,
        )
        .group_by(col(Answer.id), col(Question.id))
        .order_by(col(Answer.id))
    )
    rows = [(a, q, int(n)) for a, q, n in session.exec(stmt)]
    return [(a, q, n) for a, q, n in rows if a.confidence is not None or n > 0]


def sampled_since(session: Session, since: datetime) -> int:
    """How many answers the sampler queued since `since`."""
    stmt = (
        select(func.count())
        .select_from(Correction)
        .where(col(Correction.origin) == "sampled", col(Correction.created_at) >= since)
    )
    return int(session.exec(stmt).one())


def undrafted_cases(
    session: Session, *, max_attempts: int, limit: int
) -> list[tuple[int, list[dict[str, str]], str]]:
    """Pending sampled cases without a draft and with attempts left, the least certain first: each
    case's id, the prompt its answer was served, and that answer's text."""
    stmt = (
        select(Correction.id, Answer.prompt, Answer.text)
        .join(Answer, col(Answer.id) == Correction.answer_id)
        .where(
            col(Correction.origin) == "sampled",
            col(Correction.status) == "pending",
            col(Correction.draft).is_(None),
            col(Correction.draft_attempts) < max_attempts,
        )
        .order_by(col(Correction.uncertainty).desc(), col(Correction.id))
        .limit(limit)
    )
    return [(int(i or 0), list(p or []), str(t)) for i, p, t in session.exec(stmt)]


@dataclass(frozen=True)
class Agreement:
    """How often each reviewer's approval or rejection matched the decision the case got."""

    by_reviewer: dict[str, tuple[int, int]]  # reviewer -> (agreed, reviewed)

    @property
    def overall(self) -> float | None:
        agreed = sum(a for a, _ in self.by_reviewer.values())
        reviewed = sum(n for _, n in self.by_reviewer.values())
        return agreed / reviewed if reviewed else None


def reviewer_agreement(session: Session) -> Agreement:
    """Over decided sampled cases (their last round): a review agrees when it rejected a rejected
    case, or approved the same thing (the answer, the draft, the same edit) as the approval that
    decided an approved one."""
    stmt = (
        select(Correction, Review)
        .join(Review, col(Review.correction_id) == Correction.id)
        .where(
            col(Correction.origin) == "sampled",
            col(Correction.status).in_(("approved", "rejected")),
            col(Review.review_round) == Correction.review_round,
        )
        .order_by(col(Review.id))
    )
    cases: dict[int, tuple[Correction, list[Review]]] = {}
    for correction, review in session.exec(stmt):
        cases.setdefault(correction.id or 0, (correction, []))[1].append(review)
    by_reviewer: dict[str, tuple[int, int]] = {}
    for correction, reviews in cases.values():
        approvals = [r for r in reviews if r.decision == "approve"]
        draft = correction.draft
        decided = (
            approval_key(approvals[-1], draft) if correction.status == "approved" and approvals else None
        )
        for review in reviews:
            agreed = (
                review.decision == "reject" if decided is None else approval_key(review, draft) == decided
            )
            done, seen = by_reviewer.get(review.reviewer, (0, 0))
            by_reviewer[review.reviewer] = (done + int(agreed), seen + 1)
    return Agreement(by_reviewer)


def approval_key(review: Review, draft: str | None) -> tuple[str, str] | None:
    """What an approval keeps, as (choice, the edit's or the draft's text; empty for the bot's
    answer): reviewers agree when their keys are equal. None for a rejection. An approval without
    a choice (a person's correction) keeps its edit, or the correction's text as it stands."""
    if review.decision != "approve":
        return None
    choice = review.choice or "edit"
    text = {"edit": review.edited_text or "", "draft": draft or ""}.get(choice, "")
    return choice, text.strip()


# --- canaries --------------------------------------------------------------------------------


def open_canary(session: Session) -> Canary | None:
    return session.exec(select(Canary).where(col(Canary.is_open).is_(True))).first()


def latest_canary(session: Session) -> Canary | None:
    return session.exec(select(Canary).order_by(col(Canary.id).desc())).first()


def canary_votes(session: Session, canary: Canary) -> dict[str, tuple[int, int]]:
    """👍 and 👎 on the answers each side of the canary gave since it started, by model name."""
    rows = session.execute(
        select(Answer.adapter, Vote.value, func.count())
        .join(Vote, col(Vote.answer_id) == col(Answer.id))
        .where(
            col(Answer.adapter).in_([canary.candidate, canary.live]),
            col(Answer.created_at) >= canary.started_at,
        )
        .group_by(col(Answer.adapter), col(Vote.value))
    ).all()
    counts = {canary.candidate: [0, 0], canary.live: [0, 0]}
    for adapter, value, n in rows:
        counts[adapter][0 if value > 0 else 1] += int(n)
    return {name: (up, down) for name, (up, down) in counts.items()}


# --- triage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Miss:
    """An answer someone said was wrong (a 👎, or a correction reviewers did not reject), and why."""

    answer: Answer
    question: Question
    triage: str | None  # feedback.triage's kind; None: nothing said to tell


def misses(session: Session) -> list[Miss]:
    """Each wrongly answered question once: its approved or pending correction's triage first, else
    a 👎's. A sampled case counts once reviewers kept a draft or an edit (the bot was wrong)."""
    corrections = session.exec(
        select(Correction).where(col(Correction.status) != "rejected").order_by(col(Correction.id))
    ).all()
    down = session.exec(select(Vote).where(col(Vote.value) < 0).order_by(col(Vote.id))).all()
    why: dict[int, str | None] = {}
    for vote in down:
        why[vote.answer_id] = why.get(vote.answer_id) or vote.triage
    for correction in corrections:
        if correction.origin == "sampled" and (correction.status != "approved" or correction.triage is None):
            continue
        why[correction.answer_id] = correction.triage or why.get(correction.answer_id)
    if not why:
        return []
    rows = session.exec(
        select(Answer, Question)
        .join(Question, col(Question.id) == col(Answer.question_id))
        .where(col(Answer.id).in_(list(why)))
        .order_by(col(Answer.id))
    ).all()
    return [Miss(answer, question, why[answer.id or 0]) for answer, question in rows]


def misses_by_adapter(found: Iterable[Miss]) -> list[tuple[str, dict[str, int]]]:
    """Per adapter version (oldest first): how many of `misses` were retrieval, generation, unknown."""
    counts: dict[str, dict[str, int]] = {}
    for miss in found:
        row = counts.setdefault(miss.answer.adapter, {"retrieval": 0, "generation": 0, "unknown": 0})
        row[miss.triage or "unknown"] += 1
    return list(counts.items())


def documentation_gaps(found: Iterable[Miss], *, limit: int = 50) -> list[tuple[str, list[str]]]:
    """The questions of `misses` whose answers missed for want of the right passage, grouped by the
    page that was retrieved instead (what the documents should have said, and where): biggest first."""
    groups: dict[str, list[str]] = {}
    for miss in found:
        if miss.triage != "retrieval":
            continue
        sources = miss.answer.sources or []
        place = str(sources[0].get("title") or sources[0].get("source")) if sources else "nothing retrieved"
        asked = groups.setdefault(place, [])
        if miss.question.text not in asked:
            asked.append(miss.question.text)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return ranked[:limit]


def erasures_since(session: Session, since: datetime | None) -> int:
    """People forgotten on request since `since` (all, with None)."""
    statement = select(func.count()).select_from(Erasure)
    if since is not None:
        statement = statement.where(col(Erasure.erased_at) >= since)
    return int(session.exec(statement).one())


def previous_run_start(session: Session, run_id: int) -> datetime | None:
    """When the run before `run_id` that got as far as starting started; None for the first."""
    return session.exec(
        select(RetrainRun.started_at)
        .where(col(RetrainRun.id) < run_id, col(RetrainRun.started_at).is_not(None))
        .order_by(col(RetrainRun.id).desc())
    ).first()
