"""Microsoft's token-signing keys, fetched without ever blocking the event loop.

botbuilder 4.17 checks a Bot Framework token against keys listed by an OpenID metadata document.
Its own `_OpenIdMetadata` fetches them with `requests.get`, with no timeout, inside the event loop,
and fetches again on every request while a fetch fails: one forged token with an accepted issuer
froze the whole bot for as long as Microsoft's endpoint took to answer. `install()` puts
`SigningKeys` in its place for every metadata URL (botbuilder creates one per URL the first time it
meets it): fetched with aiohttp under a timeout, one fetch at a time per URL however many requests
wait, kept for a day, fetched again for a key id it does not know at most every few minutes, and not
tried again for a while after a failure. A token whose key cannot be had is `UnverifiableToken`,
a `PermissionError`, which the endpoint answers with 401.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from botframework.connector.auth import jwt_token_extractor
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0  # both documents together; Bot Framework waits 15 s for the whole request
KEEP_FOR = 24 * 3600.0
UNKNOWN_KEY_EVERY = 300.0  # Microsoft rolls keys over; a forged key id must not force fetches
RETRY_AFTER_FAILURE = 30.0
MAX_DOCUMENT_BYTES = 1 << 20


class UnverifiableToken(PermissionError):
    """The token names a signing key that is not Microsoft's, or the keys could not be fetched."""


@dataclass(frozen=True)
class SigningKey:
    """What botbuilder's `JwtTokenExtractor` reads from the key it asked for."""

    public_key: Any
    endorsements: list[str] = field(default_factory=list)


class SigningKeys:
    """The keys one OpenID metadata document lists (botbuilder's `_OpenIdMetadata`, replaced)."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetches = 0
        self._clock = clock
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._fetching: asyncio.Task[None] | None = None

    async def get(self, key_id: str | None) -> SigningKey:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > KEEP_FOR
        unknown = key_id not in self.keys and (
            self._fetched_at is None or now - self._fetched_at > UNKNOWN_KEY_EVERY
        )
        if stale or unknown:
            await self._refresh()
        jwk = self.keys.get(str(key_id))
        if jwk is None:
            raise UnverifiableToken("the token's signing key is not one of Microsoft's current keys")
        try:
            public_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
        except Exception as exc:  # a listed key botbuilder's RS256 check cannot use
            raise UnverifiableToken("the token's signing key is not an RSA key") from exc
        endorsements = jwk.get("endorsements")
        return SigningKey(
            public_key, [str(e) for e in endorsements] if isinstance(endorsements, list) else []
        )

    async def _refresh(self) -> None:
        if self._failed_at is not None and self._clock() - self._failed_at < RETRY_AFTER_FAILURE:
            return
        loop = asyncio.get_running_loop()
        task = self._fetching
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._fetching = loop.create_task(self._fetch())
        # Shielded: a request that gives up must not cancel the fetch the others wait for.
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            async with asyncio.timeout(FETCH_TIMEOUT), aiohttp.ClientSession() as session:
                metadata = await _json(session, self.url)
                keys_url = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not isinstance(keys_url, str):
                    raise ValueError("the metadata document has no jwks_uri")
                document = await _json(session, keys_url)
            listed = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(listed, list):
                raise ValueError("the key document has no list of keys")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._failed_at = self._clock()
            log.warning(
                "could not fetch Bot Framework signing keys from %s (%s); not trying again for %.0f s",
                self.url,
                repr(exc)[:200],
                RETRY_AFTER_FAILURE,
            )
            return
        self.keys = {k["kid"]: k for k in listed if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        self._fetched_at, self._failed_at = self._clock(), None


async def _json(session: aiohttp.ClientSession, url: str) -> object:
    body = b""
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def install() -> None:
    """Make botbuilder get every metadata URL's keys through `SigningKeys` (idempotent)."""
    jwt_token_extractor._OpenIdMetadata = SigningKeys
    cache = jwt_token_extractor.JwtTokenExtractor.metadataCache
    for url, metadata in list(cache.items()):
        if not isinstance(metadata, SigningKeys):
            cache[url] = SigningKeys(url)
