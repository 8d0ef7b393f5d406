"""Every write to the store. Each function commits before it returns, so a caller may tell the
user "recorded" the moment it gets a result; on error it rolls back and nothing is written.

Pass a session from `Database.writer()`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from feedback import errors, ids, queries, triage
from feedback.models import (
    PLATFORMS,
    REVIEW_CHOICES,
    RUN_STATUSES,
    RUN_TRIGGERS,
    VOTE_SOURCES,
    AdapterChange,
    AdapterVersion,
    AdminRefusal,
    Answer,
    BotReplica,
    Canary,
    Correction,
    Erasure,
    KeptEvent,
    OptOut,
    ProcessedEvent,
    Question,
    RetrainRun,
    Review,
    Vote,
    utcnow,
)
from feedback.queries import active_adapter, approval_key, pending_run, rollback_target

log = logging.getLogger(__name__)
SAMPLER = "sampler"  # the author of the cases the sampler queues

# Refused admin attempts recorded a minute, per sender and for everyone; the newest kept in all.
REFUSALS_PER_SENDER = 5
REFUSALS_PER_MINUTE = 60
REFUSALS_KEPT = 10_000


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _refuse(session: Session, error: errors.FeedbackError) -> errors.FeedbackError:
    """End the transaction before raising: nothing was written, and committing an empty
    transaction (unlike rolling back) leaves the caller's objects loaded. On SQLite this also
    releases the write lock that BEGIN IMMEDIATE took."""
    if session.new or session.dirty or session.deleted:
        session.rollback()
    else:
        session.commit()
    return error


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise errors.InvalidInput(message)


# --- questions and answers ---------------------------------------------------------------


def record_question(
    session: Session,
    *,
    platform: str,
    user_id: str,
    text: str,
    workspace: str = "",
    channel: str = "",
    thread: str = "",
) -> Question:
    _require(platform in PLATFORMS, f"Unknown platform {platform!r}.")
    _require(bool(text.strip()), "A question needs some text.")
    question = Question(
        platform=platform, workspace=workspace, channel=channel, thread=thread, user_id=user_id, text=text
    )
    session.add(question)
    session.commit()
    return question


def record_answer(
    session: Session,
    *,
    question_id: int,
    text: str,
    adapter: str,
    passage_ids: Sequence[str] = (),
    confidence: float | None = None,
    latency_ms: int | None = None,
    prompt: Sequence[dict[str, str]] = (),
    sources: Sequence[dict[str, Any]] = (),
    reviewed_correction_id: int | None = None,
    relevance: float | None = None,
) -> Answer:
    """`reviewed_correction_id`: the approved correction served as this answer (no model asked).
    `relevance`: retrieval's cosine between the question and the closest passage in the prompt."""
    question = ids.get(session, Question, question_id)
    if question is None:
        raise _refuse(session, errors.InvalidInput(f"There is no question #{question_id}."))
    answer = Answer(
        question_id=question_id,
        platform=question.platform,
        text=text,
        adapter=adapter,
        passage_ids=list(passage_ids),
        prompt=list(prompt),
        sources=list(sources),
        confidence=confidence,
        latency_ms=latency_ms,
        reviewed_correction_id=reviewed_correction_id,
        relevance=relevance,
    )
    session.add(answer)
    session.commit()
    return answer


def attach_reply(session: Session, *, answer_id: int, reply_channel: str, reply_ref: str) -> Answer:
    """Remember where the platform shows the answer, so reactions on it find it."""
    answer = ids.get(session, Answer, answer_id)
    if answer is None:
        raise errors.UnknownAnswer(answer_id)
    answer.reply_channel, answer.reply_ref = reply_channel, reply_ref
    session.add(answer)
    session.commit()
    return answer


# --- votes ---------------------------------------------------------------------------------


def _triage(session: Session, answer: Answer, said: str | None) -> str | None:
    """Whether what a person said instead was in the passages `answer` was given (feedback.triage)."""
    if not said or not said.strip():
        return None
    question = ids.get(session, Question, answer.question_id)
    return triage.classify(
        said,
        question=question.text if question is not None else "",
        answer=answer.text,
        context=triage.context_of(answer.prompt),
    )


def record_vote(
    session: Session,
    *,
    answer_id: int,
    user_id: str,
    value: int,
    source: str,
    comment: str | None = None,
) -> Vote:
    """One vote per user per answer: a later vote replaces the earlier one. A 👎 on a reviewed
    answer sends the approved correction it served back for review, in the same transaction."""
    _require(value in (-1, 1), "A vote is +1 or -1.")
    _require(source in VOTE_SOURCES, f"Unknown vote source {source!r}.")
    _require(bool(user_id), "A vote needs a user.")
    answer = ids.get(session, Answer, answer_id)
    if answer is None:
        raise _refuse(session, errors.UnknownAnswer(answer_id))
    if value < 0 and answer.reviewed_correction_id is not None:
        _dispute(session, answer.reviewed_correction_id, answer_id=answer_id, comment=comment)
    why = None
    if value < 0:  # the comment's why, or else the one of the correction this person suggested
        why = (
            _triage(session, answer, comment)
            or session.exec(
                select(Correction.triage).where(
                    Correction.answer_id == answer_id, Correction.author == user_id
                )
            ).first()
        )
    now = utcnow()
    stmt = _insert(session, Vote).values(
        answer_id=answer_id,
        user_id=user_id,
        value=value,
        source=source,
        comment=comment,
        triage=why,
        created_at=now,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["answer_id", "user_id"],
        set_={"value": value, "source": source, "comment": comment, "triage": why, "updated_at": now},
    )
    session.execute(stmt)
    session.commit()
    vote = session.exec(select(Vote).where(Vote.answer_id == answer_id, Vote.user_id == user_id)).one()
    session.commit()
    return vote


def withdraw_vote(
    session: Session, *, answer_id: int, user_id: str, source: str, value: int | None = None
) -> bool:
    """Remove a user's vote if it still is the one this source gave (e.g. the reaction removed)."""
    if not ids.in_range(answer_id):
        return False
    stmt = delete(Vote).where(
        col(Vote.answer_id) == answer_id, col(Vote.user_id) == user_id, col(Vote.source) == source
    )
    if value is not None:
        stmt = stmt.where(col(Vote.value) == value)
    result = session.execute(stmt)
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- corrections and reviews -----------------------------------------------------------------


def submit_correction(
    session: Session,
    *,
    answer_id: int,
    author: str,
    text: str,
    author_conversation: dict[str, Any] | None = None,
) -> Correction:
    """A correction suggested on a reviewed answer also sends the correction it served back.
    `author_conversation`: where the author is told about the decision, where a platform needs
    more than their id for that (Teams: the conversation reference of their chat)."""
    if not text.strip():
        raise errors.EmptyCorrection()
    answer = ids.get(session, Answer, answer_id)
    if answer is None:
        raise _refuse(session, errors.UnknownAnswer(answer_id))
    if answer.reviewed_correction_id is not None:
        _dispute(session, answer.reviewed_correction_id, answer_id=answer_id, comment=text, corrected=True)
    correction = Correction(
        answer_id=answer_id,
        author=author,
        text=text.strip(),
        author_conversation=author_conversation,
        triage=_triage(session, answer, text),
    )
    session.add(correction)
    if correction.triage is not None:  # the author's own 👎 on this answer has its why now
        session.execute(
            update(Vote)
            .where(col(Vote.answer_id) == answer_id, col(Vote.user_id) == author, col(Vote.value) < 0)
            .values(triage=correction.triage)
        )
    session.commit()
    return correction


def queue_answer(
    session: Session, *, answer_id: int, reasons: Sequence[str], uncertainty: float | None
) -> Correction | None:
    """Put an answer nobody corrected in the review queue, as a case holding the bot's answer
    (origin "sampled"); None where the answer already has a case, sampled or a person's."""
    answer = ids.get(session, Answer, answer_id)
    if answer is None:
        raise _refuse(session, errors.UnknownAnswer(answer_id))
    if session.exec(select(Correction.id).where(Correction.answer_id == answer_id)).first() is not None:
        return None
    correction = Correction(
        answer_id=answer_id,
        author=SAMPLER,
        text=answer.text.strip() or "(no answer)",
        origin="sampled",
        reasons=list(reasons),
        uncertainty=uncertainty,
    )
    session.add(correction)
    try:
        session.commit()
    except IntegrityError:  # another sampler queued it first: the unique index decides
        session.rollback()
        return None
    return correction


def attach_draft(
    session: Session, *, correction_id: int, draft: str | None, model: str, disagrees: bool = False
) -> Correction:
    """The teacher's draft for a sampled case, or (None) one more failed attempt at it."""
    correction = ids.get(session, Correction, correction_id)
    if correction is None:
        raise _refuse(session, errors.UnknownCorrection(correction_id))
    if draft is None:
        correction.draft_attempts += 1
    else:
        correction.draft, correction.draft_model, correction.drafted_at = draft.strip(), model, utcnow()
        if disagrees and "teacher_disagrees" not in correction.reasons:
            correction.reasons = [*correction.reasons, "teacher_disagrees"]
    session.add(correction)
    session.commit()
    return correction


def review_correction(
    session: Session,
    *,
    correction_id: int,
    reviewer: str,
    decision: str,
    reason: str | None = None,
    edited_text: str | None = None,
    approvals_required: int = 1,
    choice: str | None = None,
) -> Correction:
    """Record one reviewer's decision. A rejection closes the correction; it is approved once
    `approvals_required` different reviewers approved it in the current review round. An edit
    replaces the text. A sampled case's approval says what it keeps (`choice`: the bot's answer,
    the teacher's draft, or the edit); it is approved once that many reviewers chose the same,
    and reviewers who chose differently leave it open for another."""
    _require(decision in ("approve", "reject"), f"Unknown decision {decision!r}.")
    if edited_text is not None and not edited_text.strip():
        raise errors.EmptyCorrection()
    correction = ids.get(session, Correction, correction_id)
    if correction is None:
        raise _refuse(session, errors.UnknownCorrection(correction_id))
    if correction.origin == "sampled" and decision == "approve":
        return _review_sampled(session, correction, reviewer, reason, edited_text, approvals_required, choice)
    if correction.status != "pending":
        raise _refuse(
            session, errors.InvalidTransition(f"Correction #{correction_id} was already {correction.status}.")
        )
    current = correction.review_round
    if _reviewed(session, correction_id, reviewer, current):
        raise _refuse(session, errors.InvalidTransition(f"You already reviewed correction #{correction_id}."))

    session.add(
        Review(
            correction_id=correction_id,
            reviewer=reviewer,
            review_round=current,
            decision=decision,
            reason=reason,
            edited_text=edited_text.strip() if edited_text else None,
        )
    )
    if edited_text:
        correction.text = edited_text.strip()
    if decision == "reject":
        correction.status, correction.decided_at = "rejected", utcnow()
    else:
        session.flush()
        approvals = session.exec(
            select(func.count())
            .select_from(Review)
            .where(
                Review.correction_id == correction_id,
                Review.review_round == current,
                Review.decision == "approve",
            )
        ).one()
        if approvals >= approvals_required:
            correction.status, correction.decided_at = "approved", utcnow()
            correction.stale_reason = None
            _retriage(session, correction)
    session.add(correction)
    session.commit()
    return correction


def _review_sampled(
    session: Session,
    correction: Correction,
    reviewer: str,
    reason: str | None,
    edited_text: str | None,
    approvals_required: int,
    choice: str | None,
) -> Correction:
    choice = choice or ("edit" if edited_text else "bot")
    _require(choice in REVIEW_CHOICES, f"Unknown choice {choice!r}.")
    _require(choice != "draft" or bool(correction.draft), "This case has no draft to approve.")
    _require(choice != "edit" or bool(edited_text), "An edit needs its text.")
    correction_id, current = correction.id or 0, correction.review_round
    if correction.status != "pending":
        raise _refuse(
            session, errors.InvalidTransition(f"Correction #{correction_id} was already {correction.status}.")
        )
    if _reviewed(session, correction_id, reviewer, current):
        raise _refuse(session, errors.InvalidTransition(f"You already reviewed correction #{correction_id}."))
    review = Review(
        correction_id=correction_id,
        reviewer=reviewer,
        review_round=current,
        decision="approve",
        reason=reason,
        edited_text=(edited_text or "").strip() if choice == "edit" else None,
        choice=choice,
    )
    session.add(review)
    session.flush()
    key = approval_key(review, correction.draft)
    agreeing = sum(1 for other in approval_keys(session, correction_id, current) if other == key)
    kept = key[1] if key is not None else ""
    if agreeing >= approvals_required:
        if choice == "bot":
            answer = ids.get(session, Answer, correction.answer_id)
            kept = answer.text.strip() if answer is not None else correction.text
        correction.text = kept
        correction.status, correction.decided_at = "approved", utcnow()
        correction.stale_reason = None
        # the bot was right: no miss; otherwise the approved text says what was missed
        correction.triage = None
        if choice != "bot":
            _retriage(session, correction)
    session.add(correction)
    session.commit()
    return correction


def _retriage(session: Session, correction: Correction) -> None:
    """The approved text decides the triage (an edit may say something else than the suggestion)."""
    answer = ids.get(session, Answer, correction.answer_id)
    if answer is not None:
        correction.triage = _triage(session, answer, correction.text)


def approval_keys(session: Session, correction_id: int, review_round: int) -> list[tuple[str, str]]:
    """What each approval of the round keeps (`queries.approval_key`)."""
    correction = ids.get(session, Correction, correction_id)
    draft = correction.draft if correction is not None else None
    reviews = session.exec(
        select(Review).where(
            Review.correction_id == correction_id,
            Review.review_round == review_round,
            Review.decision == "approve",
        )
    ).all()
    return [key for review in reviews if (key := approval_key(review, draft)) is not None]


def _reviewed(session: Session, correction_id: int, reviewer: str, review_round: int) -> bool:
    found = session.exec(
        select(Review.id).where(
            Review.correction_id == correction_id,
            Review.reviewer == reviewer,
            Review.review_round == review_round,
        )
    ).first()
    return found is not None


def reopen_correction(session: Session, *, correction_id: int, reason: str) -> Correction:
    """Send a pending or approved correction back for review in a new round (earlier approvals no
    longer count), with `reason` shown to reviewers. A rejected one stays closed."""
    _require(bool(reason.strip()), "Say why the correction needs another review.")
    correction = ids.get(session, Correction, correction_id)
    if correction is None:
        raise _refuse(session, errors.UnknownCorrection(correction_id))
    if correction.status == "rejected":
        raise _refuse(
            session, errors.InvalidTransition(f"Correction #{correction_id} was rejected; it stays closed.")
        )
    _reopen(correction, reason)
    session.commit()
    return correction


def _reopen(correction: Correction, reason: str) -> None:
    correction.status, correction.decided_at = "pending", None
    correction.review_round += 1
    correction.stale_reason = reason.strip()
    correction.card_channel = correction.card_ref = None  # the old card shows the old round


def _dispute(
    session: Session, correction_id: int, *, answer_id: int, comment: str | None, corrected: bool = False
) -> None:
    """Someone found a reviewed answer wrong: its correction stops being served and goes back to
    the reviewers, with what they said. Committed by the caller, with the vote or correction."""
    correction = ids.get(session, Correction, correction_id)
    if correction is None or correction.status != "approved":
        return
    said = f": “{comment.strip()[:300]}”" if comment and comment.strip() else "."
    what = "suggested a correction to" if corrected else "marked 👎"
    _reopen(correction, f"Someone {what} the reviewed answer it gave (answer #{answer_id}){said}")
    session.add(correction)


def attach_review_card(session: Session, *, correction_id: int, channel: str, ref: str) -> Correction:
    """Remember where a correction's review card was posted, so it can be updated."""
    correction = ids.get(session, Correction, correction_id)
    if correction is None:
        raise _refuse(session, errors.UnknownCorrection(correction_id))
    correction.card_channel, correction.card_ref = channel, ref
    session.add(correction)
    session.commit()
    return correction


# --- opt-outs -------------------------------------------------------------------------------


def opt_out(session: Session, *, user_id: str) -> bool:
    """Exclude a person's messages from training data; False if they had opted out already."""
    _require(bool(user_id.strip()), "Opting out needs a user id.")
    stmt = _insert(session, OptOut).values(user_id=user_id, created_at=utcnow())
    stmt = stmt.on_conflict_do_nothing(index_elements=["user_id"]).returning(OptOut.user_id)
    added = session.execute(stmt).first() is not None
    session.commit()
    return added


def opt_in(session: Session, *, user_id: str) -> bool:
    result = session.execute(delete(OptOut).where(col(OptOut.user_id) == user_id))
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Forgotten:
    """What a privacy request removed; `corrections` by id, so their knowledge can go too."""

    questions: int
    answers: int
    votes: int
    corrections: list[int]
    reviews: int
    refusals: int


def forget_person(session: Session, *, user_id: str) -> Forgotten:
    """Delete everything a person wrote or was answered: their questions and the answers to them
    (with every vote, correction, review case and review on those), their votes and corrections on
    other answers, and their refused admin attempts. Reviews they gave as a reviewer stay: those
    are the company's decisions, not the person's data. One transaction."""
    _require(bool(user_id.strip()), "Forgetting someone needs a user id.")
    asked = select(Question.id).where(col(Question.user_id) == user_id)
    answers = select(Answer.id).where(col(Answer.question_id).in_(asked))
    corrections = [
        c
        for c in session.exec(
            select(Correction.id).where(
                or_(col(Correction.answer_id).in_(answers), col(Correction.author) == user_id)
            )
        )
        if c is not None
    ]

    def gone(statement: Any) -> int:
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

    reviews = gone(delete(Review).where(col(Review.correction_id).in_(corrections)))
    gone(delete(Correction).where(col(Correction.id).in_(corrections)))
    votes = gone(delete(Vote).where(or_(col(Vote.answer_id).in_(answers), col(Vote.user_id) == user_id)))
    answered = gone(delete(Answer).where(col(Answer.question_id).in_(asked)))
    questions = gone(delete(Question).where(col(Question.user_id) == user_id))
    refusals = gone(delete(AdminRefusal).where(col(AdminRefusal.user_id) == user_id))
    for kept in session.exec(select(KeptEvent)).all():  # questions not yet answered (a small table)
        if user_id in askers(kept.body):
            session.delete(kept)
    session.add(Erasure(questions=questions, answers=answered, votes=votes, corrections=len(corrections)))
    session.commit()
    return Forgotten(questions, answered, votes, sorted(corrections), reviews, refusals)


def askers(body: dict[str, Any]) -> set[str]:
    """Who asked a kept question: a Slack event's user, a Teams activity's sender (both ids)."""
    event, sender = body.get("event"), body.get("from")
    ids = {event.get("user")} if isinstance(event, dict) else set()
    if isinstance(sender, dict):
        ids |= {sender.get("id"), sender.get("aadObjectId")}
    return {i for i in ids if isinstance(i, str) and i}


# --- refused admin attempts -------------------------------------------------------------------


def record_refusal(
    session: Session,
    *,
    platform: str,
    user_id: str,
    command: str,
    place: str = "",
    now: datetime | None = None,
) -> bool:
    """Record a refused admin attempt; False when it is not recorded because its sender made
    `REFUSALS_PER_SENDER` in the last minute, or everyone `REFUSALS_PER_MINUTE`: a flood costs two
    indexed counts per attempt and no rows, and only the newest `REFUSALS_KEPT` rows are kept."""
    now = now or utcnow()
    recent = (
        select(func.count())
        .select_from(AdminRefusal)
        .where(col(AdminRefusal.created_at) > now - timedelta(minutes=1))
    )
    user_id = user_id[:128]
    if (
        session.exec(recent.where(AdminRefusal.user_id == user_id)).one() >= REFUSALS_PER_SENDER
        or session.exec(recent).one() >= REFUSALS_PER_MINUTE
    ):
        session.commit()
        return False
    row = AdminRefusal(
        platform=platform[:16], user_id=user_id, place=place[:256], command=command[:256], created_at=now
    )
    session.add(row)
    session.flush()
    session.execute(delete(AdminRefusal).where(col(AdminRefusal.id) <= (row.id or 0) - REFUSALS_KEPT))
    session.commit()
    return True


# --- processed platform events -------------------------------------------------------------


def claim_event(session: Session, *, key: str) -> bool:
    """True the first time a delivery key is seen, False for every retry of it."""
    stmt = _insert(session, ProcessedEvent).values(key=key, created_at=utcnow())
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
    stmt = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(ProcessedEvent.key)
    claimed = session.execute(stmt).first() is not None
    session.commit()
    return claimed


def prune_events(session: Session, *, older_than: datetime) -> int:
    """Forget deliveries handled before `older_than` (platforms stop retrying within minutes)."""
    result = session.execute(delete(ProcessedEvent).where(col(ProcessedEvent.created_at) < older_than))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- questions kept until answered (bot replicas) ----------------------------------------------


def keep_event(session: Session, *, key: str, body: dict[str, Any], owner: str) -> bool:
    """Keep an acknowledged delivery for `owner` to answer; False if it is kept already (a retry)."""
    stmt = _insert(session, KeptEvent).values(
        key=key, body=body, owner=owner, attempts=1, received_at=utcnow()
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(KeptEvent.key)
    kept = session.execute(stmt).first() is not None
    session.commit()
    return kept


def finish_event(session: Session, *, key: str) -> None:
    event = session.get(KeptEvent, key)
    if event is not None and event.finished_at is None:
        event.finished_at = utcnow()
        session.add(event)
    session.commit()


def owns_event(session: Session, *, key: str, owner: str) -> bool:
    """Whether `owner` is to answer this kept delivery (it took it over from a replica that died)."""
    event = session.get(KeptEvent, key)
    ok = event is not None and event.owner == owner and event.finished_at is None
    session.commit()
    return ok


def beat(session: Session, *, replica: str) -> None:
    """`replica` is alive now."""
    stmt = _insert(session, BotReplica).values(id=replica, seen_at=utcnow())
    stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={"seen_at": utcnow()})
    session.execute(stmt)
    session.commit()


@dataclass(frozen=True)
class TakenEvent:
    key: str
    owner: str  # the replica that had it
    body: dict[str, Any]


def take_over_events(
    session: Session, *, replica: str, silent_since: datetime, max_attempts: int = 3
) -> list[TakenEvent]:
    """The unfinished deliveries of replicas silent since `silent_since` (or never seen), now owned
    by `replica`. A conditional update per delivery, so two replicas never both take one. One
    taken over `max_attempts` times already (a question that stops every replica answering it)
    is finished instead."""
    alive = select(BotReplica.id).where(col(BotReplica.seen_at) >= silent_since)
    orphans = session.exec(
        select(KeptEvent).where(
            col(KeptEvent.finished_at).is_(None),
            col(KeptEvent.received_at) < silent_since,  # a replica may not have beaten yet
            col(KeptEvent.owner) != replica,
            col(KeptEvent.owner).not_in(alive),
        )
    ).all()
    candidates = [(e.key, e.owner, e.attempts) for e in orphans]
    session.commit()
    taken: list[TakenEvent] = []
    for key, owner, attempts in candidates:
        done = attempts >= max_attempts
        values: dict[str, Any] = (
            {"finished_at": utcnow()} if done else {"owner": replica, "attempts": attempts + 1}
        )
        result = session.execute(
            update(KeptEvent).where(col(KeptEvent.key) == key, col(KeptEvent.owner) == owner).values(**values)
        )
        session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another replica took it first
        if done:
            log.error("gave up on %s: %d replicas stopped while answering it", key, attempts)
            continue
        event = session.get(KeptEvent, key)
        if event is not None:
            taken.append(TakenEvent(key, owner, dict(event.body)))
        session.commit()
    return taken


def prune_kept_events(session: Session, *, older_than: datetime) -> int:
    """Forget answered deliveries received before `older_than`, and replicas silent since then."""
    result = session.execute(
        delete(KeptEvent).where(
            col(KeptEvent.finished_at).is_not(None), col(KeptEvent.received_at) < older_than
        )
    )
    session.execute(delete(BotReplica).where(col(BotReplica.seen_at) < older_than))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- adapter versions ------------------------------------------------------------------------


def register_adapter(
    session: Session,
    *,
    name: str,
    path: str,
    base_model: str,
    parent: str | None = None,
    dataset_hash: str = "",
    metrics: dict[str, Any] | None = None,
) -> AdapterVersion:
    _require(bool(name.strip()), "An adapter needs a name.")
    if session.exec(select(AdapterVersion).where(AdapterVersion.name == name)).first() is not None:
        raise _refuse(
            session,
            errors.InvalidInput(f"An adapter called {name!r} exists already; versions are never reused."),
        )
    adapter = AdapterVersion(
        name=name,
        path=path,
        base_model=base_model,
        parent=parent,
        dataset_hash=dataset_hash,
        metrics=metrics or {},
    )
    session.add(adapter)
    session.commit()
    return adapter


def _switch(
    session: Session, *, target: str | None, actor: str, action: str, reason: str | None
) -> AdapterVersion | None:
    new = None
    if target is not None:
        new = session.exec(select(AdapterVersion).where(AdapterVersion.name == target)).first()
        if new is None:
            raise _refuse(session, errors.UnknownAdapter(target))
        if new.status == "failed":
            raise _refuse(
                session,
                errors.InvalidTransition(f"Adapter {target!r} failed validation and cannot be made active."),
            )
    current = active_adapter(session)
    if current is not None and current.name == target:
        raise _refuse(session, errors.InvalidTransition(f"Adapter {target!r} is already active."))
    now = utcnow()
    if current is not None:
        current.status, current.retired_at = "retired", now
        session.add(current)
        session.flush()  # free the single "active" slot before taking it
    if new is not None:
        new.status, new.activated_at, new.retired_at = "active", now, None
        session.add(new)
    session.add(
        AdapterChange(
            action=action,
            from_name=current.name if current else None,
            to_name=target,
            actor=actor,
            reason=reason,
        )
    )
    session.commit()
    return new


def activate_adapter(
    session: Session, *, name: str | None, actor: str, reason: str | None = None
) -> AdapterVersion | None:
    """Make `name` the active adapter (None: answer with the base model), retiring the current one."""
    return _switch(session, target=name, actor=actor, action="promote", reason=reason)


def rollback_adapter(session: Session, *, actor: str, reason: str | None = None) -> AdapterVersion | None:
    """Go back to whatever was active before the current adapter was promoted."""
    possible, target = rollback_target(session)
    if not possible:
        raise _refuse(
            session, errors.InvalidTransition("The base model is serving; there is nothing to roll back.")
        )
    return _switch(session, target=target, actor=actor, action="rollback", reason=reason)


def mark_adapter_failed(
    session: Session, *, name: str, metrics: dict[str, Any] | None = None
) -> AdapterVersion:
    adapter = session.exec(select(AdapterVersion).where(AdapterVersion.name == name)).first()
    if adapter is None:
        raise _refuse(session, errors.UnknownAdapter(name))
    if adapter.status == "active":
        raise _refuse(session, errors.InvalidTransition(f"Adapter {name!r} is active; roll it back first."))
    adapter.status = "failed"
    if metrics:
        adapter.metrics = {**adapter.metrics, **metrics}
    session.add(adapter)
    session.commit()
    return adapter


# --- canaries --------------------------------------------------------------------------------


def _step(canary: Canary, text: str) -> None:
    canary.steps = [*canary.steps, {"at": utcnow().isoformat(), "status": canary.status, "text": text}]


def open_canary(
    session: Session, *, candidate: str, live: str, share: float, run_id: int | None, note: str
) -> Canary:
    """Start serving `candidate` to `share` of the threads beside `live`; refused while another
    canary is open (the database decides between two processes)."""
    _require(0 < share < 1, f"A canary's share must be between 0 and 1, not {share}.")
    canary = Canary(candidate=candidate, live=live, share=share, run_id=run_id)
    _step(canary, note)
    session.add(canary)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        current = queries.open_canary(session)
        what = f"{current.candidate}'s canary" if current else "another canary"
        raise errors.InvalidTransition(f"{what} is still open: promote or stop it first.") from None
    return canary


def canary_step(session: Session, *, canary_id: int, text: str, looks_done: int | None = None) -> Canary:
    """Keep one step of an open canary (a look, a notice), and how many looks are done."""
    canary = ids.get(session, Canary, canary_id)
    if canary is None or not canary.is_open:
        raise _refuse(session, errors.InvalidTransition(f"Canary #{canary_id} is not open."))
    if looks_done is not None:
        canary.looks_done = looks_done
    _step(canary, text)
    session.add(canary)
    session.commit()
    return canary


def mark_undecided(session: Session, *, canary_id: int, reason: str) -> Canary:
    canary = ids.get(session, Canary, canary_id)
    if canary is None or canary.status != "running":
        raise _refuse(session, errors.InvalidTransition(f"Canary #{canary_id} is not running."))
    canary.status, canary.reason = "undecided", reason
    _step(canary, reason)
    session.add(canary)
    session.commit()
    return canary


def close_canary(session: Session, *, canary_id: int, status: str, reason: str, actor: str) -> Canary:
    """End an open canary as promoted, rolled back or stopped; its retrain run says so too."""
    _require(status in ("promoted", "rolled_back", "stopped"), f"{status!r} does not end a canary.")
    canary = ids.get(session, Canary, canary_id)
    if canary is None or not canary.is_open:
        raise _refuse(session, errors.InvalidTransition(f"Canary #{canary_id} is not open."))
    canary.status, canary.is_open, canary.reason = status, None, reason
    canary.decided_by, canary.decided_at = actor, utcnow()
    _step(canary, reason)
    session.add(canary)
    run = ids.get(session, RetrainRun, canary.run_id) if canary.run_id is not None else None
    if run is not None and run.status == "canary":
        run.status = "promoted" if status == "promoted" else "rolled_back"
        run.decision = f"{run.decision or ''}\nCanary: {reason}".strip()
        session.add(run)
    session.commit()
    return canary


def canary_posted(session: Session, *, canary_id: int, posted: int) -> None:
    """How many of the canary's steps the admins have been sent."""
    session.execute(update(Canary).where(col(Canary.id) == canary_id).values(posted=posted))
    session.commit()


# --- retrain runs ----------------------------------------------------------------------------


def queue_run(
    session: Session, *, trigger: str, requested_by: str | None = None, if_idle: bool = False
) -> RetrainRun:
    """Queue a retrain for the scheduler. With `if_idle`, refused while one is queued or running."""
    _require(trigger in RUN_TRIGGERS, f"Unknown trigger {trigger!r}.")
    if if_idle and (pending := pending_run(session)) is not None:
        raise _refuse(session, errors.RunPending(pending.id or 0, pending.status))
    run = RetrainRun(trigger=trigger, requested_by=requested_by)
    session.add(run)
    session.commit()
    return run


def start_run(session: Session, *, run_id: int) -> RetrainRun:
    """Mark a queued run as running; refused while another run is running anywhere."""
    # FOR UPDATE (PostgreSQL): a second process claiming the same run waits, then sees it taken.
    run = ids.get(session, RetrainRun, run_id, with_for_update=True)
    if run is None:
        raise _refuse(session, errors.UnknownRun(run_id))
    if run.status != "queued":
        raise _refuse(session, errors.InvalidTransition(f"Run #{run_id} is {run.status}, not queued."))
    run.status = "running"
    run.started_at = run.heartbeat_at = utcnow()
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise errors.RunInProgress() from None
    return run


def beat_run(session: Session, *, run_id: int) -> bool:
    """A running run shows it is alive; False once it is no longer running (finished, or reaped)."""
    result = session.execute(
        update(RetrainRun)
        .where(col(RetrainRun.id) == run_id, col(RetrainRun.status) == "running")
        .values(heartbeat_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reap_stale_runs(session: Session, *, older_than: datetime) -> list[int]:
    """Record as failed every running run with no heartbeat since `older_than` (its process was
    killed or its machine died), which frees the one-running-run slot; the ids reaped.

    Runs from before heartbeats existed count from their start. The update repeats the staleness
    test, so a beat that lands between the select and the update keeps its run alive."""
    silent = or_(
        col(RetrainRun.heartbeat_at) < older_than,
        and_(col(RetrainRun.heartbeat_at).is_(None), col(RetrainRun.started_at) < older_than),
    )
    stale = session.execute(
        select(RetrainRun.id, RetrainRun.heartbeat_at, RetrainRun.started_at, RetrainRun.created_at)
        .where(RetrainRun.status == "running", silent)
        .order_by(col(RetrainRun.id))
    ).all()
    reaped: list[int] = []
    now = utcnow()
    for run_id, heartbeat_at, started_at, created_at in stale:
        error = (
            "The process running this retrain stopped without finishing it (no sign of life since "
            f"{_utc_minute(heartbeat_at or started_at or created_at)}); the active adapter kept "
            "serving. Queue the run again."
        )
        result = session.execute(
            update(RetrainRun)
            .where(col(RetrainRun.id) == run_id, col(RetrainRun.status) == "running", silent)
            .values(status="failed", finished_at=now, error=error)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            reaped.append(run_id)
            log.warning("retrain run #%d reaped: %s", run_id, error)
    session.commit()
    return reaped


def _utc_minute(when: datetime) -> str:
    """SQLite gives datetimes back without their zone; every one stored here is UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def withdraw_run(session: Session, *, run_id: int) -> bool:
    """Delete a run that never started (a scheduler that lost the race for it); False otherwise."""
    result = session.execute(
        delete(RetrainRun).where(col(RetrainRun.id) == run_id, col(RetrainRun.status) == "queued")
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_run(
    session: Session,
    *,
    run_id: int,
    status: str,
    decision: str | None = None,
    candidate: str | None = None,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> RetrainRun:
    _require(status in RUN_STATUSES and status not in ("queued", "running"), f"{status!r} is not an outcome.")
    run = ids.get(session, RetrainRun, run_id)
    if run is None:
        raise _refuse(session, errors.UnknownRun(run_id))
    if run.status != "running":
        raise _refuse(session, errors.InvalidTransition(f"Run #{run_id} is {run.status}, not running."))
    run.status, run.finished_at = status, utcnow()
    run.decision, run.candidate, run.error = decision, candidate, error
    run.metrics = {**run.metrics, **(metrics or {})}
    session.add(run)
    session.commit()
    return run
