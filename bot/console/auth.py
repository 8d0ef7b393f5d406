"""Who may use the console: reviewers' identities, the admin cookie, CSRF tokens, Origin checks,
local requests.

Each person signs in with a token of their own (CONSOLE_USERS, `name:token` pairs) and is
`console:NAME` from then on: the identity comes from the token, never from a typed name, so one
person cannot approve a correction twice under two names, and the `console:` prefix keeps a console
identity from ever being a Slack or Teams user id. ADMIN_TOKEN still works for a single admin, as
the one identity `console:admin`.

The admin cookie is `<payload>.<signature>`: the payload is base64 JSON {"name", "exp"}, the signature
an HMAC-SHA256 keyed by that identity's token, so changing a person's token signs them out and nothing
is stored server-side. A form's CSRF token is an HMAC of the cookie itself: a page from elsewhere can
neither read the cookie (HttpOnly) nor compute the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

ADMIN_COOKIE = "console_admin"
USER_COOKIE = "console_user"
SESSION_SECONDS = 12 * 3600
MAX_NAME = 64
# Wrong tokens allowed per client address per minute before logins are refused for a while.
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
IDENTITY_PREFIX = "console:"
ADMIN_IDENTITY = IDENTITY_PREFIX + "admin"  # whoever holds ADMIN_TOKEN


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def clean_name(raw: str | None) -> str | None:
    """A person's name or id as typed, or None when it is not usable (empty, too long, control
    characters)."""
    name = (raw or "").strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return None
    return name


def _same(offered: bytes, expected: str) -> bool:
    """Constant-time comparison that also takes what no ASCII-only str comparison would."""
    return hmac.compare_digest(offered, expected.encode())


def is_local(request: web.Request) -> bool:
    """A request from this machine itself, not relayed by a proxy on it."""
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site. Browsers send Origin with
    every cross-site POST; requests without it (curl, old browsers) rely on SameSite and CSRF."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    try:
        return urlsplit(origin).netloc.lower() == request.host.lower()
    except ValueError:  # not a URL at all ("http://[::1")
        return False


def identity(name: str) -> str:
    """The console identity of CONSOLE_USERS' `name`: never a Slack or Teams user id."""
    return IDENTITY_PREFIX + name


@dataclass
class Auth:
    """`admin_token`: ADMIN_TOKEN; `users`: CONSOLE_USERS as {name: token}."""

    admin_token: str = ""
    users: Mapping[str, str] = field(default_factory=dict)
    # Failed login times per client address.
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _tokens: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.admin_token:
            self._tokens[ADMIN_IDENTITY] = self.admin_token.encode()
        for name, token in self.users.items():
            self._tokens[identity(name)] = token.encode()

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def _sign(self, who: str, message: str) -> str:
        key = hashlib.sha256(b"console-session:" + who.encode() + b"\0" + self._tokens[who]).digest()
        return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())

    # -- the token ------------------------------------------------------------------------------

    def check_token(self, offered: str, client: str, *, shown: str | None = None) -> str | None:
        """The identity whose token `offered` is, or None; a wrong one counts against `client` (the
        peer address, which a header cannot fake) and is logged with `shown` (the forwarded address)."""
        if not self.enabled:
            return None
        candidate = offered.strip().encode()
        found = None
        for who, token in self._tokens.items():  # every token compared: the time says nothing
            if hmac.compare_digest(candidate, token):
                found = who
        if found is None:
            self._failures.setdefault(client, deque()).append(time.monotonic())
            log.warning("console login refused: wrong token from %s", shown or client)
        return found

    def throttled(self, client: str) -> bool:
        """Too many wrong tokens from `client` lately."""
        failures = self._failures.get(client)
        if not failures:
            return False
        while failures and time.monotonic() - failures[0] > FAILURE_WINDOW:
            failures.popleft()
        return len(failures) >= MAX_FAILURES

    # -- the cookie -----------------------------------------------------------------------------

    def session_cookie(self, who: str, *, now: float | None = None) -> str:
        payload = _b64(json.dumps({"name": who, "exp": int((now or time.time()) + SESSION_SECONDS)}).encode())
        return f"{payload}.{self._sign(who, payload)}"

    def admin_name(self, request: web.Request) -> str | None:
        """The signed-in identity (`console:NAME`), or None."""
        if not self.enabled:
            return None
        payload, _, signature = request.cookies.get(ADMIN_COOKIE, "").partition(".")
        # The signature is checked before anything in the payload is parsed.
        offered = signature.encode()
        signer = next((w for w in self._tokens if _same(offered, self._sign(w, payload))), None)
        if not payload or signer is None:
            return None
        try:
            data = json.loads(_unb64(payload))
            who, expires = str(data["name"]), float(data["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        return who if who == signer and expires > time.time() else None

    def csrf_token(self, request: web.Request) -> str:
        """The signed-in identity's CSRF token for this cookie; empty for anyone else."""
        who = self.admin_name(request)
        return self._sign(who, "csrf:" + request.cookies.get(ADMIN_COOKIE, "")) if who else ""

    def csrf_ok(self, request: web.Request, offered: str) -> bool:
        expected = self.csrf_token(request)
        return bool(offered) and bool(expected) and _same(offered.encode(), expected)

    def set_session(self, response: web.StreamResponse, request: web.Request, who: str) -> None:
        response.set_cookie(
            ADMIN_COOKIE,
            self.session_cookie(who),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )


def client_address(request: web.Request) -> str:
    return request.headers.get("X-Forwarded-For", request.remote or "unknown").split(",")[0].strip()
