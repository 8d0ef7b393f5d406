"""Sign-in and sign-out with a personal token (CONSOLE_USERS) or ADMIN_TOKEN; the identity comes from
the token (see `bot.console.auth` for the cookie)."""

from __future__ import annotations

from aiohttp import web

from bot.console.auth import ADMIN_COOKIE, client_address, same_origin
from bot.console.core import STALE_FORM, bad_form, console_of, read_form, refused

WRONG_TOKEN = (
    "That is not a console token, so you are not signed in. Use your own token from CONSOLE_USERS "
    "(or ADMIN_TOKEN) and try again."
)
THROTTLED = "Too many wrong tokens from your address; wait a minute before trying again."
DEFAULT_NEXT = "/console/review"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/login", login_page),
        web.post("/console/login", login),
        web.post("/console/logout", logout),
    ]


def safe_next(raw: object) -> str:
    """Only console pages: never another site (`//evil.example`) after signing in."""
    target = str(raw or "")
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return DEFAULT_NEXT


async def login_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    if not console.auth.enabled:
        return console.render(request, "admin_off.html", status=403)
    return console.render(request, "login.html", error=None, next=safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    auth = console.auth
    if not auth.enabled:
        return console.render(request, "admin_off.html", status=403)
    form = await read_form(request)
    if form is None:
        return bad_form(request)
    target = safe_next(form.get("next"))

    def refuse(message: str, status: int) -> web.Response:
        return console.render(request, "login.html", status=status, error=message, next=target)

    if not same_origin(request):
        return refuse(STALE_FORM, 403)
    throttle_key = request.remote or "unknown"
    if auth.throttled(throttle_key):
        return refuse(THROTTLED, 429)
    who = auth.check_token(str(form.get("token", "")), throttle_key, shown=client_address(request))
    if who is None:
        await refused(request, None, "sign in (wrong token)")
        return refuse(WRONG_TOKEN, 401)
    response = web.Response(status=303, headers={"Location": target})
    auth.set_session(response, request, who)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return console_of(request).render(
            request, "message.html", status=403, title="Not signed out", message=STALE_FORM
        )
    response = web.Response(status=303, headers={"Location": "/console/"})
    response.del_cookie(ADMIN_COOKIE, path="/")
    return response
