"""Reviewed answers: a question close enough to an approved correction's question is answered with
the corrected text itself, no model asked, citing the correction. With a real knowledge base (the
hashing embedder), a real review desk and a real store on SQLite and PostgreSQL; only the model is
a fake, so what it was asked can be checked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.pipeline import Answer, Delta, Pipeline, Question
from bot.review.desk import ReviewDesk, ReviewPolicy, correction_title
from bot.review.reviewed_answers import REVIEWED_ADAPTER, ReviewedAnswers
from bot.slack import Deps
from chatbot.settings import Settings
from chatbot.wiring import reviewed_answers
from feedback import queries, store
from feedback.db import Database
from feedback.models import Answer as AnswerRow
from model_server.client import AsyncModelClient
from tests.support.common import eventually
from tests.support.fakes import FakeModel
from tests.support.slack_harness import running_bot
from tests.support.slack_payloads import mention, reaction_event

LEAVE_PAGE = (
    "# Annual Leave\n\n## Allowance\n\nEveryone gets 25 days of paid annual leave a year.\n\n"
    "## Carrying over\n\nUnused days can be carried over until 1 April.\n"
)
ASKED = "How many days of annual leave do I get?"
REWORDED = "How many days of annual leave do I get each year?"  # 0.92 with the hashing embedder
SAME_TOPIC = "Can I carry unused annual leave days over to next year?"  # 0.52: another question
CORRECTED = "Full-time staff get 27 days of annual leave a year."
THRESHOLD = 0.8  # the hashing embedder's scale, not MiniLM's


class Setup:
    def __init__(self, database: Database, tmp_path: Path, *, recall: bool = True) -> None:
        docs = tmp_path / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "leave.md").write_text(LEAVE_PAGE)
        self.database = database
        self.kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
        self.kb.ingest([docs], progress=False)
        self.model = FakeModel("You get 25 days.")
        self.reviewed = ReviewedAnswers(database, self.kb.embedder, threshold=THRESHOLD, recall=recall)
        client = AsyncModelClient("http://model.test", transport=httpx.MockTransport(self.model), retries=0)
        self.pipeline = Pipeline(
            retriever=self.kb,
            client=client,
            model_name=lambda: "base",
            database=database,
            reviewed=self.reviewed,
        )
        self.desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"], recall=recall), knowledge=self.kb)

    async def corrected(self) -> int:
        """Ask, correct and approve: the approved correction's id."""
        first = await self.pipeline.answer(Question(ASKED, platform="slack", user_id="U1"))
        case = self.desk.submit(answer_id=first.answer_id or 0, author="U1", text=CORRECTED)
        self.desk.decide(case.correction.id or 0, reviewer="R1", decision="approve")
        return case.correction.id or 0

    def row(self, answer: Answer) -> AnswerRow:
        with self.database.reader() as session:
            row = queries.get_answer(session, answer.answer_id or 0)
        assert row is not None
        return row

    async def close(self) -> None:
        await self.pipeline.client.aclose()
        self.kb.close()


@pytest.fixture
async def setup(database: Database, tmp_path: Path) -> AsyncIterator[Setup]:
    made = Setup(database, tmp_path)
    yield made
    await made.close()


async def test_a_reworded_question_gets_the_reviewed_answer_without_the_model(setup: Setup) -> None:
    correction_id = await setup.corrected()
    asked_before = len(setup.model.requests)

    answer = await setup.pipeline.answer(Question(REWORDED, platform="slack", user_id="U7"))

    assert len(setup.model.requests) == asked_before  # no model call
    lead, body = answer.text.split("\n\n", 1)
    assert lead.startswith("Reviewed answer (approved by R1 on ") and body == CORRECTED
    assert [s.title for s in answer.sources] == [correction_title(correction_id), "Annual Leave > Allowance"]
    assert (answer.adapter, answer.confidence, answer.covered) == (REVIEWED_ADAPTER, 1.0, True)
    assert answer.reviewed_correction_id == correction_id
    row = setup.row(answer)
    assert (row.adapter, row.reviewed_correction_id, row.confidence, row.text) == (
        REVIEWED_ADAPTER,
        correction_id,
        1.0,
        answer.text,
    )
    assert row.sources[0]["source"] == f"correction:{correction_id}" and row.prompt == []
    # The corrected answer's pages are recorded, so a change there sends a correction of this one back.
    with setup.database.reader() as session:
        case = queries.review_case(session, correction_id)
    assert case is not None and row.passage_ids == case.answer.passage_ids != []


async def test_another_question_on_the_same_topic_asks_the_model_with_the_correction_first(
    setup: Setup,
) -> None:
    correction_id = await setup.corrected()
    answer = await setup.pipeline.answer(Question(SAME_TOPIC, user_id="U7"))
    assert answer.adapter == "base" and answer.reviewed_correction_id is None
    assert answer.text == "You get 25 days."
    titles = [s.title for s in answer.sources]
    assert titles[0] == correction_title(correction_id)  # retrieved, and put first in the context
    documents = setup.model.requests[-1]["messages"][0]["content"].split("Documents:\n", 1)[1]
    assert documents.startswith(f"[1] {correction_title(correction_id)}\n")


async def test_the_streaming_path_serves_the_same_reviewed_answer(setup: Setup) -> None:
    correction_id = await setup.corrected()
    asked_before = len(setup.model.requests)
    items = [item async for item in setup.pipeline.answer_stream(Question(REWORDED, platform="web"))]
    deltas, final = items[:-1], items[-1]
    assert isinstance(final, Answer) and all(isinstance(d, Delta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, Delta)) == final.text
    assert final.text.endswith(CORRECTED) and final.reviewed_correction_id == correction_id
    assert len(setup.model.requests) == asked_before
    assert setup.row(final).reviewed_correction_id == correction_id


async def test_a_correction_withdrawn_for_re_review_is_not_served(setup: Setup) -> None:
    correction_id = await setup.corrected()
    with setup.database.reader() as session:
        cited = queries.review_case(session, correction_id)
    assert cited is not None
    assert setup.desk.recheck(cited.answer.passage_ids) == [correction_id]  # its page changed

    answer = await setup.pipeline.answer(Question(REWORDED))
    assert answer.adapter == "base" and answer.reviewed_correction_id is None
    assert correction_title(correction_id) not in [s.title for s in answer.sources]


async def test_a_reopened_correction_still_in_the_index_is_neither_served_nor_in_the_context(
    setup: Setup, tmp_path: Path
) -> None:
    """Reopened in another process (a 👎 on its reviewed answer there), its document still in this
    index: the store says it is not approved, so it is neither answered with nor retrieved."""
    correction_id = await setup.corrected()
    other = Database(setup.database.engine.url.render_as_string(hide_password=False))
    try:
        with other.writer() as session:
            store.reopen_correction(session, correction_id=correction_id, reason="Disputed.")
    finally:
        other.dispose()
    assert f"correction:{correction_id}" in [p.source for p in setup.kb.search(SAME_TOPIC)]
    for text in (REWORDED, SAME_TOPIC):
        answer = await setup.pipeline.answer(Question(text))
        assert answer.reviewed_correction_id is None
        assert correction_title(correction_id) not in [s.title for s in answer.sources]


async def test_a_rejected_correction_is_never_served(setup: Setup) -> None:
    first = await setup.pipeline.answer(Question(ASKED))
    case = setup.desk.submit(answer_id=first.answer_id or 0, author="U1", text=CORRECTED)
    setup.desk.decide(case.correction.id or 0, reviewer="R1", decision="reject", reason="It is 25.")
    answer = await setup.pipeline.answer(Question(ASKED))
    assert answer.adapter == "base" and answer.text == "You get 25 days."


async def test_an_approval_in_another_process_is_served_at_once(setup: Setup) -> None:
    first = await setup.pipeline.answer(Question(ASKED))
    other = Database(setup.database.engine.url.render_as_string(hide_password=False))
    try:
        with other.writer() as session:
            correction = store.submit_correction(
                session, answer_id=first.answer_id or 0, author="U1", text=CORRECTED
            )
            store.review_correction(
                session, correction_id=correction.id or 0, reviewer="R9", decision="approve"
            )
    finally:
        other.dispose()
    answer = await setup.pipeline.answer(Question(REWORDED))
    assert answer.reviewed_correction_id == correction.id and "approved by R9" in answer.text


async def test_recall_off_uses_neither_reviewed_answers_nor_indexed_corrections(
    database: Database, tmp_path: Path
) -> None:
    on = Setup(database, tmp_path)
    correction_id = await on.corrected()  # indexed while recall was on
    await on.close()
    off = Setup(database, tmp_path, recall=False)
    try:
        assert f"correction:{correction_id}" in [p.source for p in off.kb.search(ASKED)]
        for text in (ASKED, REWORDED):
            answer = await off.pipeline.answer(Question(text))
            assert answer.adapter == "base" and answer.reviewed_correction_id is None
            assert correction_title(correction_id) not in [s.title for s in answer.sources]
            assert CORRECTED not in off.model.requests[-1]["messages"][0]["content"]
    finally:
        await off.close()


def test_settings_reach_the_matcher(database: Database, tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    default = reviewed_answers(Settings(), database, kb)
    assert (default.threshold, default.recall, default.embedder) == (0.82, True, kb.embedder)
    off = reviewed_answers(Settings(correction_recall=False, reviewed_answer_similarity=0), database, kb)
    assert (off.threshold, off.recall) == (0, False)
    kb.close()


async def test_threshold_zero_turns_reviewed_answers_off(setup: Setup) -> None:
    correction_id = await setup.corrected()
    setup.reviewed.threshold = 0
    answer = await setup.pipeline.answer(Question(ASKED))
    assert answer.adapter == "base"
    assert answer.sources[0].title == correction_title(correction_id)  # still first


async def test_votes_on_a_reviewed_answer_are_recorded_and_a_thumbs_down_sends_it_back(setup: Setup) -> None:
    correction_id = await setup.corrected()
    served = await setup.pipeline.answer(Question(REWORDED, platform="slack", user_id="U7"))
    with setup.database.writer() as session:
        store.record_vote(session, answer_id=served.answer_id or 0, user_id="U7", value=1, source="button")
    with setup.database.reader() as session:
        assert [v.value for v in queries.votes_for(session, served.answer_id or 0)] == [1]
        assert queries.review_queue(session) == []  # a 👍 changes nothing

    with setup.database.writer() as session:
        store.record_vote(
            session,
            answer_id=served.answer_id or 0,
            user_id="U8",
            value=-1,
            source="reaction",
            comment="It's 26",
        )
    with setup.database.reader() as session:
        assert sorted(v.value for v in queries.votes_for(session, served.answer_id or 0)) == [-1, 1]
        (case,) = queries.review_queue(session)
    assert case.correction.id == correction_id and case.correction.status == "pending"
    assert case.correction.review_round == 2 and "👎" in (case.correction.stale_reason or "")
    assert "It's 26" in (case.correction.stale_reason or "")
    assert case.downvotes == 1  # the reviewed answer's 👎 counts in the queue's order
    again = await setup.pipeline.answer(Question(REWORDED))
    assert again.adapter == "base"  # not served until approved again

    setup.desk.decide(correction_id, reviewer="R1", decision="approve")
    assert (await setup.pipeline.answer(Question(REWORDED))).reviewed_correction_id == correction_id


async def test_a_correction_to_a_reviewed_answer_sends_the_served_one_back(setup: Setup) -> None:
    correction_id = await setup.corrected()
    served = await setup.pipeline.answer(Question(REWORDED))
    newer = setup.desk.submit(answer_id=served.answer_id or 0, author="U8", text="It is 28 days now.")
    with setup.database.reader() as session:
        queue = queries.review_queue(session)
    assert {c.correction.id for c in queue} == {correction_id, newer.correction.id}
    setup.desk.decide(newer.correction.id or 0, reviewer="R1", decision="approve")
    answer = await setup.pipeline.answer(Question(REWORDED))
    assert answer.reviewed_correction_id == newer.correction.id and answer.text.endswith("It is 28 days now.")


async def test_over_slack_a_reworded_question_gets_the_reviewed_answer_and_a_thumbs_down_counts(
    tmp_path: Path,
) -> None:
    """The real Slack app, signed events over HTTP: the reply is the reviewed answer, its sources
    name the correction, and a 👎 reaction on it is recorded and sends the correction back."""

    def configure(deps: Deps) -> None:
        assert deps.pipeline.database is not None
        deps.pipeline.reviewed = ReviewedAnswers(
            deps.pipeline.database, HashingEmbedder(), threshold=THRESHOLD
        )

    async with running_bot(tmp_path, configure=configure) as bot:
        with bot.database.writer() as session:
            q = store.record_question(session, platform="slack", user_id="U1", text=ASKED, channel="C1")
            a = store.record_answer(session, question_id=q.id or 0, text="25 days.", adapter="kb-v1")
            c = store.submit_correction(session, answer_id=a.id or 0, author="U1", text=CORRECTED)
            store.review_correction(session, correction_id=c.id or 0, reviewer="R1", decision="approve")

        question = bot.slack.add_message("C1", "U7", f"<@U0BOT> {REWORDED}")
        await bot.send_event(mention(question, "C1"))
        await bot.slack.wait_for_replies(channel="C1")
        await bot.settled()
        posted = bot.slack.messages["C1"][-1]
        assert bot.model.requests == []  # answered without the model
        assert "Reviewed answer (approved by R1" in posted["text"] and CORRECTED in posted["text"]
        assert correction_title(c.id or 0) in json.dumps(posted["blocks"])
        answer_id = posted["metadata"]["event_payload"]["answer_id"]

        await bot.send_event(reaction_event("reaction_added", "-1", user="U8", channel="C1", ts=posted["ts"]))

        async def sent_back() -> bool:
            with bot.database.reader() as session:
                voted = [v.value for v in queries.votes_for(session, answer_id)] == [-1]
                return voted and [k.correction.id for k in queries.review_queue(session)] == [c.id]

        await eventually(sent_back)


async def test_only_the_closest_correction_goes_first_others_keep_their_rank(setup: Setup) -> None:
    leave = await setup.corrected()
    first = await setup.pipeline.answer(Question(SAME_TOPIC))
    case = setup.desk.submit(
        answer_id=first.answer_id or 0, author="U1", text="Unused days last until 1 April."
    )
    setup.desk.decide(case.correction.id or 0, reviewer="R1", decision="approve")
    setup.reviewed.threshold = 0  # the model answers: only the context's order is at stake

    answer = await setup.pipeline.answer(Question("Until when can I carry over unused annual leave?"))
    titles = [s.title for s in answer.sources]
    assert titles[0] == correction_title(case.correction.id or 0)
    plain = setup.kb.search("Until when can I carry over unused annual leave?")
    rank = [p.title for p in plain if p.source != f"correction:{case.correction.id}"]
    assert titles[1:] == rank  # the other correction (if retrieved) where retrieval put it
    assert correction_title(leave) in rank and rank[0] != correction_title(leave)  # not moved up
