"""Questions: a personal message, or a message that @mentions the bot in a channel or group chat.
The request is answered at once (after the delivery is claimed and "typing…" shown); the answer
follows as a reply, streamed in as the model writes it in a personal chat, whole elsewhere. Admin
commands arrive the same way, and run only for a request that carried a valid Bot Framework token."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import Activity

from bot.errors import BotError
from bot.inbox import Handler, settle
from bot.pipeline import Question, ask, ask_streamed
from bot.teams import access, cards, replies, review, translate
from bot.teams.deps import Admin, TeamsDeps
from bot.teams.replies import Replier
from bot.teams.stream import TeamsStream

log = logging.getLogger(__name__)
# Why an admin command from a request without a valid Bot Framework token is refused (recorded).
UNAUTHENTICATED = "not authenticated"


async def on_message(context: TurnContext, deps: TeamsDeps) -> None:
    activity = context.activity
    if not translate.is_question(activity):
        return
    if not await deps.records.claim(translate.delivery_key(activity)):
        log.info("activity %s was a retry of one already answered", activity.id)
        return
    question = translate.to_question(activity)
    later = replies.Later.of(context, deps.app_id)
    await replies.now(context).typing_once()

    admin, admin_id = _admin_for(deps, activity)
    text = question.text
    # Without a verified token anyone could claim an admin's id: such a request never runs a command.
    authenticated = access.channel_authenticated(context)
    command = translate.admin_command(text) if admin is not None else None
    if admin is not None and command is not None and not authenticated:
        # Recorded under the id it claims, with why, so the console shows the attempt.
        channel = later.reference.conversation.id
        user = admin_id or question.user_id
        await admin.refuse(user, text, platform="teams", channel=channel, reason=UNAUTHENTICATED)
        await replies.now(context).send(cards.notice(cards.ADMIN_NEEDS_AUTH))
    elif admin is not None and command is not None:
        # Sent on for anyone: the admin handler refuses non-admins itself, and logs who tried.
        deps.spawn(_run_admin(deps, later, admin, admin_id or question.user_id, text))
    elif deps.review is not None and review.is_command(text):
        await review.on_command(context, deps)
    elif text.lower() == "help":
        if admin is not None and admin_id is not None and authenticated:
            deps.spawn(_run_admin(deps, later, admin, admin_id, text))
        else:
            await replies.now(context).send(cards.notice(cards.USAGE))
    else:
        key = translate.delivery_key(activity)
        if deps.inbox is not None:  # before the request is answered: see bot.inbox
            await deps.inbox.keep(key, activity.serialize())
        deps.spawn(_answer_later(deps, later, question, key))


def _admin_for(deps: TeamsDeps, activity: Activity) -> tuple[Admin | None, str | None]:
    """The admin handler, and which of the sender's ids (AAD object id, Teams id) is an admin's."""
    if deps.admin is None:
        return None, None
    ids = translate.user_ids(activity)
    return deps.admin, next((i for i in ids if deps.admin.is_admin(i)), None)


async def _run_admin(deps: TeamsDeps, later: replies.Later, admin: Admin, user_id: str, text: str) -> None:
    async def work(replier: Replier) -> None:
        try:
            reply = await admin.handle(
                user_id, text, platform="teams", channel=later.reference.conversation.id
            )
            message = cards.with_image(reply.text, reply.image)
        except Exception:
            log.exception("admin command %r by %s failed", text, user_id)
            message = cards.notice(BotError.user_message)
        await replier.send(message)

    async with deps.inflight.track():
        await later.run(work)


def resume(deps: TeamsDeps, adapter: BotAdapter) -> Handler:
    """Answers a question taken over from a replica that died (`bot.inbox`), as it would have."""

    async def answer(body: dict[str, Any]) -> None:
        activity = Activity().deserialize(body)
        later = replies.Later(adapter, TurnContext.get_conversation_reference(activity), deps.app_id)
        deps.spawn(
            _answer_later(deps, later, translate.to_question(activity), translate.delivery_key(activity))
        )

    return answer


async def _answer_later(deps: TeamsDeps, later: replies.Later, question: Question, key: str) -> None:
    await settle(deps.inbox, key, _answer(deps, later, question))


async def _answer(deps: TeamsDeps, later: replies.Later, question: Question) -> bool:
    async def work(replier: Replier) -> None:
        if later.reference.conversation.conversation_type == "personal":
            # Teams streams only in one-to-one chats.
            stream = TeamsStream(replier, interval=deps.stream_interval)
            await stream.inform(cards.SEARCHING)
            answer, notice = await ask_streamed(deps.pipeline, question, on_text=stream.add)
            message = cards.to_reply(answer) if answer is not None else cards.notice(notice)
            reply_id = await stream.finish(message)
        else:
            async with replier.typing():
                answer, message = await ask(
                    deps.pipeline, question, reply=cards.to_reply, notice=cards.notice
                )
            reply_id = await replier.send(message)
        if answer is not None and answer.answer_id is not None and reply_id:
            # At once: reactions and feedback clicks find their answer by this id.
            await deps.records.attach_reply(answer.answer_id, question.channel, reply_id)

    async with deps.inflight.track(), deps.answering:
        await later.run(work)
    return True
