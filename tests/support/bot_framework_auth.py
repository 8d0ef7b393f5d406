"""Stand-ins for Microsoft's side of Bot Framework authentication, so the real botbuilder validator
runs against them without the network.

`KeyServer` is the OpenID metadata document and its key set (login.botframework.com's
`/v1/.well-known/openidconfiguration` and `jwks_uri`) on 127.0.0.1, in a thread of its own (so a
fetch that blocked the bot's event loop would block only the bot), optionally slow, counting its
requests. `point_botbuilder_at(server)` makes botbuilder read it: `ChannelValidation` takes its
metadata URL from the class attribute `open_id_metadata_endpoint` when set. `KeyServer.token` mints
a channel token as the Bot Framework service sends it (issuer `https://api.botframework.com`, the
app id as audience, the activity's `serviceurl`, RS256 with the served key). `ConnectorTokens` is
Microsoft's token service for the bot's own replies: every credential it makes carries a fixed token.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from botframework.connector.auth import (
    AppCredentials,
    ChannelValidation,
    PasswordServiceClientCredentialFactory,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from msrest.authentication import Authentication

ISSUER = "https://api.botframework.com"
KEY_ID = "test-signing-key"
CONNECTOR_TOKEN = "connector-token-for-tests"
METADATA_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/keys"


class KeyServer:
    """Use as `with KeyServer(delay=...) as keys:`; `delay`: seconds each answer takes."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: Counter[str] = Counter()
        self.private_key = _rsa_key("microsoft")
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [jwk | {"kid": KEY_ID, "use": "sig", "endorsements": ["msteams"]}]}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> KeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return self.url + METADATA_PATH

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path] += 1
                time.sleep(server.delay)
                if self.path == METADATA_PATH:
                    body: dict[str, Any] = {"issuer": ISSUER, "jwks_uri": server.url + KEYS_PATH}
                elif self.path == KEYS_PATH:
                    body = server.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the bot gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def token(
        self, *, app_id: str, service_url: str, key: rsa.RSAPrivateKey | None = None, **claims: Any
    ) -> str:
        """A channel token for `app_id`; `key`: sign with another key (a forgery)."""
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": now - 10,
            "exp": now + 3600,
        } | claims
        return jwt.encode(payload, key or self.private_key, algorithm="RS256", headers={"kid": KEY_ID})

    def fetches(self) -> int:
        return self.requests[METADATA_PATH]


@contextmanager
def point_botbuilder_at(server: KeyServer) -> Iterator[None]:
    """Make botbuilder's channel-token check read `server`'s metadata instead of Microsoft's."""
    before = ChannelValidation.open_id_metadata_endpoint
    ChannelValidation.open_id_metadata_endpoint = server.metadata_url
    try:
        yield
    finally:
        ChannelValidation.open_id_metadata_endpoint = before


@functools.cache
def _rsa_key(whose: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def forged_key() -> rsa.RSAPrivateKey:
    """A key that is not Microsoft's: a token it signs is a forgery."""
    return _rsa_key("forger")


class _FixedToken(AppCredentials):
    def get_access_token(self, force_refresh: bool = False) -> str:
        return CONNECTOR_TOKEN


class ConnectorTokens(PasswordServiceClientCredentialFactory):
    """botbuilder's own credential factory (it checks the app id), minus the call to Microsoft."""

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> Authentication:
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        return _FixedToken(app_id, oauth_scope=oauth_scope)
