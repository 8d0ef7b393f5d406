"""What every console page works with: its collaborators, the templates, and the access guards."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from bot.admin import AdminCommands, record_refused
from bot.console.auth import Auth, client_address, is_local, same_origin
from bot.inflight import Inflight
from bot.pipeline import Pipeline
from bot.records import Records
from bot.review.desk import Outcome, ReviewDesk
from feedback.db import Database

log = logging.getLogger(__name__)

PLATFORM = "web"  # what the store calls questions asked in the browser
VOTE_SOURCE = "console"
MAX_FLASHES = 200  # notices waiting to be shown after a redirect
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STALE_FORM = (
    "That form was out of date or came from another site, so nothing was changed. "
    "Reload the page and try again."
)
BAD_FORM = "That form could not be read, so nothing was changed. Reload the page and try again."
CHAT_CLOSED = (
    "The console's chat answers requests from this machine only. Sign in with your console token, or "
    "ask whoever runs the bot to set CONSOLE_CHAT_OPEN=true."
)


@dataclass
class ConsoleDeps:
    """`review` and `admin` may be None (tests, a bot without a knowledge base): their pages say so.
    `on_decided` tells the people a review decision concerns (the Slack card, the author in Slack or
    Teams: `bot.review.news`); it returns a problem to show the reviewer, or None."""

    pipeline: Pipeline
    database: Database
    records: Records
    review: ReviewDesk | None = None
    admin: AdminCommands | None = None
    admin_token: str = ""
    console_users: Mapping[str, str] = field(default_factory=dict)  # CONSOLE_USERS: {name: token}
    chat_open: bool = False  # CONSOLE_CHAT_OPEN: chat for everyone who reaches the port
    inflight: Inflight = field(default_factory=Inflight)
    answering: asyncio.Semaphore | None = None  # shared with Slack and Teams when given
    on_decided: Callable[[Outcome], Awaitable[str | None]] | None = None


class Console:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.auth = Auth(deps.admin_token, deps.console_users)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._flashes: OrderedDict[str, str] = OrderedDict()

    def render(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        admin = self.auth.admin_name(request)
        html = self.templates.get_template(template).render(
            admin=admin,
            admin_enabled=self.auth.enabled,
            csrf=self.auth.csrf_token(request) if admin else "",
            path=request.path,
            **context,
        )
        return web.Response(text=html, status=status, content_type="text/html")

    def flash(self, text: str) -> str:
        """Keep `text` for the page a redirect leads to; the key to ask for it with."""
        key = secrets.token_urlsafe(8)
        self._flashes[key] = text
        while len(self._flashes) > MAX_FLASHES:
            self._flashes.popitem(last=False)
        return key

    def flashed(self, key: str) -> str | None:
        return self._flashes.pop(key, None)

    def reviewer_desk(self, name: str) -> ReviewDesk | None:
        """The review desk with `name` (a signed-in console identity) among the reviewers."""
        desk = self.deps.review
        if desk is None:
            return None
        policy = dataclasses.replace(desk.policy, reviewers=desk.policy.reviewers | {name})
        return ReviewDesk(desk.database, policy, knowledge=desk.knowledge)

    def chat_allowed(self, request: web.Request) -> bool:
        return self.deps.chat_open or is_local(request) or self.auth.admin_name(request) is not None


CONSOLE = web.AppKey("console", Console)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def json_error(message: str, status: int) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def read_json(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object, or None when it is not one."""
    try:
        body = json.loads(await request.text())
    except (ValueError, LookupError, RecursionError):  # not JSON, not its charset, nested too deep
        return None
    return body if isinstance(body, dict) else None


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField] | None:
    """The request's form, or None when its body cannot be read as one (a truncated multipart
    body, an unknown charset, bytes that are not its text)."""
    try:
        return await request.post()
    except web.HTTPException:  # too large: aiohttp's own 4xx
        raise
    except Exception as exc:  # whatever the parser met, the body is the sender's to fix
        log.info("unreadable form posted to %r: %s", request.path, type(exc).__name__)
        return None


def bad_form(request: web.Request) -> web.Response:
    return console_of(request).render(
        request, "message.html", status=400, title="Not changed", message=BAD_FORM
    )


async def refused(request: web.Request, who: str | None, what: str) -> None:
    """Record a refused admin attempt on the console: who (the identity, else the client's
    address), where (the route), what."""
    await asyncio.to_thread(
        record_refused,
        console_of(request).deps.database,
        platform=PLATFORM,
        user_id=who or client_address(request),
        place=request.path,
        command=what,
    )


def admin_page(handler: Handler) -> Handler:
    """GET pages for admins: explain how to enable them without console tokens; send others to login."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        console = console_of(request)
        if not console.auth.enabled:
            return console.render(request, "admin_off.html", status=403)
        if console.auth.admin_name(request) is None:
            raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs, safe='/')}")
        return await handler(request)

    return guarded


def admin_action(handler: Handler) -> Handler:
    """POSTs for admins: signed in, from this site, with the form's CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        console = console_of(request)
        if not console.auth.enabled:
            return console.render(request, "admin_off.html", status=403)
        who = console.auth.admin_name(request)
        action = request.path.rsplit("/", 1)[-1]
        if who is None:
            await refused(request, None, f"{action} (not signed in)")
            return console.render(request, "login.html", status=401, error=None, next=request.path)
        form = await read_form(request)
        if form is None:
            return bad_form(request)
        if not same_origin(request) or not console.auth.csrf_ok(request, str(form.get("csrf", ""))):
            await refused(request, who, f"{action} (stale form or another site)")
            return console.render(
                request, "message.html", status=403, title="Not changed", message=STALE_FORM
            )
        return await handler(request)

    return guarded


def admin_name(request: web.Request) -> str:
    name = console_of(request).auth.admin_name(request)
    assert name is not None  # the guards let only admins through
    return name
