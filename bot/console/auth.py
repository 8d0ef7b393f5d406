"""Who may use the console: the admin cookie, CSRF tokens, Origin checks, local requests.

The admin cookie is `<payload>.<signature>`: the payload is base64 JSON {"name", "exp"}, the signature
an HMAC-SHA256 keyed by ADMIN_TOKEN, so changing the token signs everyone out and nothing is stored
server-side. A form's CSRF token is an HMAC of the cookie itself: a page from elsewhere can neither
read the cookie (HttpOnly) nor compute the token.
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
DEFAULT_ADMIN_NAME = "console-admin"


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
    return urlsplit(origin).netloc.lower() == request.host.lower()


@dataclass
class Auth:
    admin_token: str
    # Failed login times per client address.
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.admin_token)

    @property
    def _key(self) -> bytes:
        return hashlib.sha256(b"console-session:" + self.admin_token.encode()).digest()

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self._key, message.encode(), hashlib.sha256).digest())

    # -- the token ------------------------------------------------------------------------------

    def check_token(self, offered: str, client: str, *, shown: str | None = None) -> bool:
        """Whether `offered` is the admin token; a wrong one counts against `client` (the peer
        address, which a header cannot fake) and is logged with `shown` (the forwarded address)."""
        if not self.enabled:
            return False
        ok = hmac.compare_digest(offered.strip().encode(), self.admin_token.encode())
        if not ok:
            self._failures.setdefault(client, deque()).append(time.monotonic())
            log.warning("console login refused: wrong admin token from %s", shown or client)
        return ok

    def throttled(self, client: str) -> bool:
        """Too many wrong tokens from `client` lately."""
        failures = self._failures.get(client)
        if not failures:
            return False
        while failures and time.monotonic() - failures[0] > FAILURE_WINDOW:
            failures.popleft()
        return len(failures) >= MAX_FAILURES

    # -- the cookie -----------------------------------------------------------------------------

    def session_cookie(self, name: str, *, now: float | None = None) -> str:
        payload = _b64(
            json.dumps({"name": name, "exp": int((now or time.time()) + SESSION_SECONDS)}).encode()
        )
        return f"{payload}.{self._sign(payload)}"

    def admin_name(self, request: web.Request) -> str | None:
        """The signed-in admin's name, or None."""
        if not self.enabled:
            return None
        cookie = request.cookies.get(ADMIN_COOKIE, "")
        payload, _, signature = cookie.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            name, expires = str(data["name"]), float(data["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        return name if expires > time.time() else None

    def csrf_token(self, request: web.Request) -> str:
        return self._sign("csrf:" + request.cookies.get(ADMIN_COOKIE, ""))

    def csrf_ok(self, request: web.Request, offered: str) -> bool:
        return bool(offered) and hmac.compare_digest(offered, self.csrf_token(request))

    def set_session(self, response: web.StreamResponse, request: web.Request, name: str) -> None:
        response.set_cookie(
            ADMIN_COOKIE,
            self.session_cookie(name),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )


def client_address(request: web.Request) -> str:
    return request.headers.get("X-Forwarded-For", request.remote or "unknown").split(",")[0].strip()
