"""The chat page and its three calls: ask (an event stream), vote, suggest a correction.

The stream says at once that the question is being worked on, then carries the answer's text as
the model writes it (`delta` events), and last the answer as recorded, with its sources, ids and
confidence (from the whole completion's log-probabilities) for the vote and correction controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlmodel import Session

from bot.console.auth import USER_COOKIE, clean_name, same_origin
from bot.console.core import (
    CHAT_CLOSED,
    PLATFORM,
    VOTE_SOURCE,
    Console,
    console_of,
    json_error,
    read_json,
)
from bot.errors import BotError, EmptyQuestion
from bot.pipeline import Answer, Delta, Question
from feedback import queries, store
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)

MAX_QUESTION = 4000
MAX_CORRECTION = 4000
BAD_NAME = "Your name needs 1 to 64 characters, without line breaks; nothing was recorded."
NOT_JSON = "The request was not a JSON object; nothing was recorded."
OTHER_SITE = "That request came from another site, so nothing was recorded."
NO_SUCH_ANSWER = "There is no such answer in the console; reload the page and ask again."
USER_COOKIE_DAYS = 365


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/", chat_page),
        web.post("/console/api/ask", ask),
        web.post("/console/api/vote", vote),
        web.post("/console/api/correction", correction),
    ]


async def chat_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    if not console.chat_allowed(request):
        if console.auth.enabled:
            raise web.HTTPSeeOther("/console/login?next=/console/")
        return console.render(request, "message.html", status=403, title="Chat", message=CHAT_CLOSED)
    response = console.render(request, "chat.html")
    _remember_user(request, response)
    return response


def _remember_user(request: web.Request, response: web.StreamResponse) -> str:
    """The anonymous id of this browser, given a cookie on its first visit."""
    user = clean_name(request.cookies.get(USER_COOKIE))
    if user is None:
        user = f"web-{secrets.token_hex(4)}"
        response.set_cookie(
            USER_COOKIE, user, max_age=USER_COOKIE_DAYS * 86400, path="/", httponly=True, samesite="Lax"
        )
    return user


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


async def _start(request: web.Request) -> tuple[Console, dict[str, Any]]:
    """The checks every chat call makes; the body. Raises _Refused with the response to send."""
    console = console_of(request)
    if not console.chat_allowed(request):
        raise _Refused(json_error(CHAT_CLOSED, 403))
    if not same_origin(request):
        raise _Refused(json_error(OTHER_SITE, 403))
    body = await read_json(request)
    if body is None:
        raise _Refused(json_error(NOT_JSON, 400))
    return console, body


def _user(request: web.Request, body: dict[str, Any]) -> str | None:
    """Who is asking: the name typed, else this browser's anonymous id. None when the name is bad."""
    typed = body.get("user")
    if typed is not None and str(typed).strip():
        return clean_name(str(typed))
    return clean_name(request.cookies.get(USER_COOKIE)) or f"web-{secrets.token_hex(4)}"


def _answer_id(body: dict[str, Any]) -> int | None:
    """The answer id given, any integer: one no answer can have (0, -1, 2**63) is "no such answer"."""
    value = body.get("answer_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def ask(request: web.Request) -> web.StreamResponse:
    try:
        console, body = await _start(request)
    except _Refused as refused:
        return refused.response
    text = body.get("question")
    if not isinstance(text, str) or not text.strip():
        return json_error(EmptyQuestion.user_message, 400)
    if len(text) > MAX_QUESTION:
        return json_error(f"Please keep the question under {MAX_QUESTION} characters.", 400)
    user = _user(request, body)
    if user is None:
        return json_error(BAD_NAME, 400)

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await _event(response, "status", {"stage": "thinking"})
    question = Question(text=text.strip(), platform=PLATFORM, user_id=user, channel="console")
    deps = console.deps
    async with deps.inflight.track(), _turn(deps.answering):
        try:
            # read to the end even when the page has gone, so the answer is still recorded
            async for item in deps.pipeline.answer_stream(question):
                if isinstance(item, Delta):
                    await _event(response, "delta", {"text": item.text})
                else:
                    await _event(response, "answer", _answer_json(item))
        except BotError as exc:
            await _event(response, "error", {"message": exc.user_message})
        except Exception:
            log.exception("console question from %s failed", user)
            await _event(response, "error", {"message": BotError.user_message})
    await response.write_eof()
    return response


@contextlib.asynccontextmanager
async def _turn(semaphore: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if semaphore is None:
        yield
        return
    async with semaphore:
        yield


async def _event(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionResetError):  # the page went away; the answer is stored anyway
        await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


def _answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer_id": answer.answer_id,
        "question_id": answer.question_id,
        "text": answer.text,
        "sources": [
            {"title": s.title, "source": s.source, "url": s.url, "score": s.score} for s in answer.sources
        ],
        "adapter": answer.adapter,
        "confidence": answer.confidence,
        "covered": answer.covered,
    }


async def _console_answer(console: Console, answer_id: int) -> bool:
    """Votes and corrections here are for answers given in the console."""

    def find(session: Session) -> bool:
        answer = queries.get_answer(session, answer_id)
        return answer is not None and answer.platform == PLATFORM

    def read() -> bool:
        with console.deps.database.reader() as session:
            return find(session)

    return await asyncio.to_thread(read)


async def vote(request: web.Request) -> web.Response:
    try:
        console, body = await _start(request)
    except _Refused as refused:
        return refused.response
    answer_id, value = _answer_id(body), body.get("value")
    if answer_id is None or value not in (1, -1, 0) or isinstance(value, bool):
        return json_error("A vote needs an answer_id and a value of 1, -1 or 0 (withdraw).", 400)
    user = _user(request, body)
    if user is None:
        return json_error(BAD_NAME, 400)
    if not await _console_answer(console, answer_id):
        return json_error(NO_SUCH_ANSWER, 404)
    records = console.deps.records
    try:
        if value == 0:
            await _withdraw(console, answer_id, user)
        else:
            await records.vote(answer_id=answer_id, user_id=user, value=int(value), source=VOTE_SOURCE)
    except FeedbackError as exc:  # the store's messages are written for people
        return json_error(str(exc), 409)
    return web.json_response({"ok": True, "answer_id": answer_id, "value": value, "user": user})


async def _withdraw(console: Console, answer_id: int, user: str) -> None:
    """Withdraw this user's console vote, whichever it was."""

    def write() -> None:
        with console.deps.database.writer() as session:
            store.withdraw_vote(session, answer_id=answer_id, user_id=user, source=VOTE_SOURCE)

    await asyncio.to_thread(write)


async def correction(request: web.Request) -> web.Response:
    try:
        console, body = await _start(request)
    except _Refused as refused:
        return refused.response
    answer_id, text = _answer_id(body), body.get("text")
    if answer_id is None or not isinstance(text, str):
        return json_error("A correction needs an answer_id and its text.", 400)
    if len(text) > MAX_CORRECTION:
        return json_error(f"Please keep the correction under {MAX_CORRECTION} characters.", 400)
    user = _user(request, body)
    if user is None:
        return json_error(BAD_NAME, 400)
    if not await _console_answer(console, answer_id):
        return json_error(NO_SUCH_ANSWER, 404)
    deps = console.deps
    try:
        if deps.review is not None:
            case = await asyncio.to_thread(deps.review.submit, answer_id=answer_id, author=user, text=text)
            correction_id, status = case.correction.id, case.correction.status
        else:
            correction_id = await deps.records.correct(answer_id=answer_id, author=user, text=text)
            status = "pending"
    except FeedbackError as exc:
        return json_error(str(exc), 400)
    return web.json_response({"ok": True, "correction_id": correction_id, "status": status})
