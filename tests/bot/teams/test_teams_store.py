"""Teams end to end on each SQL backend (SQLite and PostgreSQL): ids as long as Teams makes them fit
the store's columns, and a question, its answer, votes and corrections land where they should."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot.teams.translate import fit
from feedback import queries
from feedback.db import Database
from feedback.models import Correction, Question
from tests.support.teams_activities import ADA, GRACE, TENANT, feedback_invoke, personal, reaction
from tests.support.teams_harness import running_teams_bot

LONG_CONVERSATION = "a:1" + "Zq9-xW_3kLmN0pQrStUvWxYz" * 8  # 195 characters, longer than the columns
LONG_USER = "29:1" + "AbCdEfGhIjKlMnOpQrStUvWx" * 7


async def test_the_whole_flow_with_long_teams_ids(tmp_path: Path, database: Database) -> None:
    conversation = personal() | {"id": LONG_CONVERSATION}
    async with running_teams_bot(tmp_path, database=database) as bot:
        reply = await bot.ask(conversation=conversation)
        click = feedback_invoke(reply.id, "dislike", service_url=bot.service_url, text="It is 30 days.")
        click["conversation"] = conversation
        click["from"] = {"id": LONG_USER, "name": "Guest"}  # a guest: no Azure AD object id
        assert (await bot.send(click)).json() == {}
        added = reaction(reply.id, service_url=bot.service_url, added=["like"], conversation=conversation)
        assert (await bot.send(added)).status_code == 200

    with database.reader() as session:
        [question] = session.exec(select(Question))
        assert (question.platform, question.user_id, question.workspace) == ("teams", ADA.aad_id, TENANT)
        assert question.channel == fit(LONG_CONVERSATION) != LONG_CONVERSATION
        answer = queries.find_answer_by_reply(
            session, platform="teams", reply_channel=fit(LONG_CONVERSATION), reply_ref=reply.id
        )
        assert answer is not None and answer.id is not None
        votes = sorted((v.user_id, v.value, v.source) for v in queries.votes_for(session, answer.id))
        assert votes == sorted([(fit(LONG_USER), -1, "teams_feedback"), (GRACE.aad_id, 1, "reaction")])
        [correction] = session.exec(select(Correction))
        assert (correction.author, correction.text, correction.status) == (
            fit(LONG_USER),
            "It is 30 days.",
            "pending",
        )
