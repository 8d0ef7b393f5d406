"""`POST /api/messages`: Bot Framework activities in, through a real botbuilder `CloudAdapter`.

With an app id the request's JWT is validated (Bot Framework's keys, fetched off the event loop by
`signing_keys`; the app id as audience); with none, authentication is off, as the Bot Framework
Emulator expects, and only this machine may post unless the operator opened it (`access`). Either
way an activity whose `serviceUrl` is not a place the bot may reply to is refused before anything
is sent. The request is authenticated
here and handed to `adapter.process_activity`, and the invoke response written here too, rather than
through `CloudAdapter.process`: that one sends an empty Authorization header on (which fails even with
authentication off) and answers 500 to an invoke response whose body is a plain dict, such as the
`{}` Teams wants after a feedback click.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from aiohttp import web
from botbuilder.core import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity
from botframework.connector.auth import ServiceClientCredentialsFactory
from msrest.exceptions import DeserializationError

from bot.teams import access, questions, signing_keys, translate
from bot.teams.bot import TeamsBot, on_turn_error
from bot.teams.deps import TeamsDeps

log = logging.getLogger(__name__)

EMULATOR_ONLY = (
    "Without MICROSOFT_APP_ID, /api/messages answers only the Bot Framework Emulator on the bot's own "
    "machine (docs/teams.md)."
)
BAD_SERVICE_URL = "The activity's serviceUrl is not a Bot Framework service, so the bot will not reply there."


def build_adapter(
    *,
    app_id: str = "",
    app_password: str = "",
    tenant_id: str = "",
    credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> CloudAdapter:
    """`credentials_factory`: where the bot's own tokens for the Bot Connector come from; by default
    Microsoft's token service, for the app id and password."""
    # The attribute names botbuilder's configuration reader looks for.
    config = SimpleNamespace(
        APP_ID=app_id,
        APP_PASSWORD=app_password,
        APP_TYPE="SingleTenant" if tenant_id else "MultiTenant",
        APP_TENANTID=tenant_id,
    )
    auth = ConfigurationBotFrameworkAuthentication(config, credentials_factory=credentials_factory)
    adapter = CloudAdapter(auth)
    adapter.on_turn_error = on_turn_error
    return adapter


class TeamsEndpoint:
    """`allow_unauthenticated`: without an app id, take activities from anywhere, not only from this
    machine. `reply_to_loopback`: whether replies may go to a `serviceUrl` on this machine; by default
    only without an app id (the Emulator listens there)."""

    def __init__(
        self,
        deps: TeamsDeps,
        *,
        app_password: str = "",
        tenant_id: str = "",
        allow_unauthenticated: bool = False,
        reply_to_loopback: bool | None = None,
        credentials_factory: ServiceClientCredentialsFactory | None = None,
    ) -> None:
        signing_keys.install()
        self.deps = deps
        self.bot = TeamsBot(deps)
        self.adapter = build_adapter(
            app_id=deps.app_id,
            app_password=app_password,
            tenant_id=tenant_id,
            credentials_factory=credentials_factory,
        )
        self.allow_unauthenticated = allow_unauthenticated
        self.reply_to_loopback = not self.authenticated if reply_to_loopback is None else reply_to_loopback
        if deps.inbox is not None:
            deps.inbox.handlers["teams"] = questions.resume(deps, self.adapter)

    @property
    def authenticated(self) -> bool:
        return bool(self.deps.app_id)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not (self.authenticated or self.allow_unauthenticated or _from_this_machine(request)):
            log.warning("refused an unauthenticated activity from %s (Emulator mode)", request.remote)
            return _problem(403, EMULATOR_ONLY)
        if request.content_type != "application/json":
            return _problem(415, "Bot Framework activities are JSON (Content-Type: application/json).")
        try:
            body = await request.json()
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except (ValueError, RecursionError, DeserializationError):
            activity = None
        if activity is None or not activity.type or not translate.addressable(activity):
            return _problem(400, "The body is not a Bot Framework activity.")

        header = request.headers.get("Authorization") or None
        try:
            auth = await self.adapter.bot_framework_authentication.authenticate_request(activity, header)
        except signing_keys.UnverifiableToken as exc:
            log.warning("refused an activity whose token could not be verified: %s", exc)
            return _problem(401, "Unauthorized.")
        except PermissionError as exc:
            log.warning("refused an unauthenticated activity on /api/messages: %s", exc)
            return _problem(401, "Unauthorized.")
        except Exception as exc:  # botbuilder trips over malformed tokens (KeyError and the like)
            log.warning("refused an activity whose token is bad: %s", repr(exc)[:200])
            return _problem(401, "Unauthorized.")
        if not access.reply_target_allowed(activity.service_url, loopback=self.reply_to_loopback):
            log.warning("refused a %s activity whose serviceUrl is not a Bot Framework host", activity.type)
            return _problem(403, BAD_SERVICE_URL)

        try:
            response = await self.adapter.process_activity(auth, activity, self.bot.on_turn)
        except Exception:
            log.exception("a %s activity could not be processed", activity.type)
            return _problem(500, "The activity could not be processed.")
        if response is None:
            return web.Response(status=200)
        status = int(response.status or 200)
        if response.body is None:
            return web.Response(status=status)
        body = response.body if isinstance(response.body, dict | list) else serializer_helper(response.body)
        return web.json_response(body, status=status, dumps=json.dumps)


def _from_this_machine(request: web.Request) -> bool:
    return access.is_loopback(request.remote) and not access.forwarded(request.headers)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
