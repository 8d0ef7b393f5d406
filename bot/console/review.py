"""The review queue in the browser: the same `ReviewDesk` as Slack's cards and `chatbot review`.

The signed-in reviewer decides as the identity their token gives (`console:NAME`); signing in makes
them a reviewer, and k-of-n review counts distinct identities, so one token approves once. After a
decision the people it concerns are told as `chatbot review` tells them (the Slack card updated,
the author sent a note in Slack or Teams: `ConsoleDeps.on_decided`), then the page reloads (POST,
then redirect) with a notice, and a warning when someone could not be told.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.console.core import admin_action, admin_name, admin_page, bad_form, console_of, read_form
from bot.errors import BotError
from bot.review.desk import REASON_NEEDED, Outcome
from feedback import ids
from feedback.errors import FeedbackError, NotFound

log = logging.getLogger(__name__)

NOTICES = {
    "approved": "Correction #{id} approved. It is in the knowledge base now.",
    "approved-not-indexed": "Correction #{id} approved.",
    "rejected": "Correction #{id} rejected; the reason is kept.",
    "counted": "Approval recorded: correction #{id} waits for more reviewers.",
}
NOT_TOLD = "The decision is recorded, but {problem}."
NOT_TOLD_AT_ALL = (
    "The decision is recorded, but telling its author and the review card failed; see the bot's log."
)
NO_REVIEW = "Reviews are not set up in this bot (it has no knowledge base to add corrections to)."
DECISIONS = ("approve", "draft", "edit", "reject")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/review", review_page),
        web.post(r"/console/review/{id:\d+}/{decision:approve|draft|edit|reject}", decide),
    ]


@admin_page
async def review_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    console = console_of(request)
    desk = console.deps.review
    if desk is None:
        return console.render(request, "message.html", status=503, title="Review", message=NO_REVIEW)
    queue = await asyncio.to_thread(desk.queue)
    notice = None
    kind, ident = request.query.get("done", ""), request.query.get("id", "")
    if kind in NOTICES and ident.isdigit():
        notice = NOTICES[kind].format(id=ident)
    return console.render(
        request,
        "review.html",
        status=status,
        queue=queue,
        required=desk.policy.approvals_required,
        notice=notice,
        warning=console.flashed(request.query.get("warning", "")),
        error=error,
    )


@admin_action
async def decide(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    name = admin_name(request)
    desk = console.reviewer_desk(name)
    if desk is None:
        return console.render(request, "message.html", status=503, title="Review", message=NO_REVIEW)
    correction_id = ids.parse(request.match_info["id"])
    if correction_id is None:  # out of any id column's range: no such correction
        return await _page(
            request, error=f"There is no correction #{request.match_info['id'][:20]}.", status=404
        )
    decision = request.match_info["decision"]
    form = await read_form(request)
    if form is None:
        return bad_form(request)
    text = str(form.get("text", "")).strip()
    reason = str(form.get("reason", "")).strip()
    if decision == "edit" and not text:
        return await _page(request, error="Write the corrected answer before approving the edit.", status=400)
    if decision == "reject" and not reason:
        return await _page(request, error=REASON_NEEDED, status=400)
    verdict = "reject" if decision == "reject" else "approve"
    decide_it = functools.partial(
        desk.decide,
        correction_id,
        reviewer=name,
        decision=verdict,
        reason=reason or None,
        edited_text=text if decision == "edit" else None,
        choice="draft" if decision == "draft" else None,
    )
    try:
        outcome: Outcome = await asyncio.to_thread(decide_it)
    except NotFound as exc:
        return await _page(request, error=str(exc), status=404)
    except FeedbackError as exc:  # decided meanwhile, a second vote: said for people
        log.info("console review of correction %s by %s refused: %s", correction_id, name, exc)
        return await _page(request, error=str(exc), status=409)
    except BotError as exc:
        return await _page(request, error=exc.user_message, status=403)
    log.info("correction %s: %s by %s in the console", correction_id, verdict, name)
    status = outcome.case.correction.status
    if status == "approved":
        kind = "approved" if outcome.indexed else "approved-not-indexed"
    else:
        kind = "rejected" if status == "rejected" else "counted"
    location = f"/console/review?done={kind}&id={correction_id}"
    problem = await _tell(console.deps.on_decided, outcome)
    if problem is not None:
        location += f"&warning={console.flash(problem)}"
    raise web.HTTPSeeOther(location)


async def _tell(
    on_decided: Callable[[Outcome], Awaitable[str | None]] | None, outcome: Outcome
) -> str | None:
    """Tell the people the decision concerns; what to warn the reviewer of, or None."""
    if on_decided is None:
        return None
    try:
        problem = await on_decided(outcome)
    except Exception:  # the decision stands whatever happened while telling people about it
        log.exception("telling people about correction %s failed", outcome.case.correction.id)
        return NOT_TOLD_AT_ALL
    return None if problem is None else NOT_TOLD.format(problem=problem)
