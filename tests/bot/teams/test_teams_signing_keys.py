"""Checking Bot Framework tokens never holds up the bot: Microsoft's signing keys are fetched off the
event loop, under a timeout, one fetch at a time, and kept; a token that cannot be verified gets
401. Microsoft's OpenID metadata and key endpoints are `bot_framework_auth.KeyServer` on 127.0.0.1,
in a thread, slow where a test needs it; botbuilder's own validator reads them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from bot.teams import signing_keys
from bot.teams.signing_keys import SigningKeys, UnverifiableToken
from tests.support.bot_framework_auth import CONNECTOR_TOKEN, KEY_ID, KeyServer, forged_key
from tests.support.teams_activities import APP_ID, message
from tests.support.teams_harness import running_teams_bot


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_forged_tokens_against_slow_keys_do_not_hold_up_the_bot(tmp_path: Path) -> None:
    with KeyServer(delay=1.5) as keys:
        async with running_teams_bot(tmp_path, keys=keys) as bot:
            activity = message("hi", service_url=bot.service_url)
            forged = bearer(keys.token(app_id=APP_ID, service_url=bot.service_url, key=forged_key()))
            started = time.monotonic()
            sent = [asyncio.create_task(bot.send(activity, headers=forged)) for _ in range(5)]
            await asyncio.sleep(0.3)  # every forged request is now waiting for the keys (3 s)
            health = await bot.http.get("/healthz")
            assert health.status_code == 200
            assert time.monotonic() - started < 1.5
            assert not any(task.done() for task in sent)

            assert [r.status_code for r in await asyncio.gather(*sent)] == [401] * 5
            assert keys.fetches() == 1  # one fetch however many requests waited for it
            await bot.settled()
            assert bot.connector.received == []


async def test_keys_that_never_come_mean_401_soon_and_no_fetch_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing_keys, "FETCH_TIMEOUT", 0.5)
    with KeyServer(delay=4.0) as keys:
        async with running_teams_bot(tmp_path, keys=keys) as bot:
            activity = message("hi", service_url=bot.service_url)
            forged = bearer(keys.token(app_id=APP_ID, service_url=bot.service_url, key=forged_key()))
            started = time.monotonic()
            first = await bot.send(activity, headers=forged)
            assert first.status_code == 401  # not 503: the token could not be verified
            assert time.monotonic() - started < 2.0
            # Within the pause after a failed fetch, even a good token is refused without a fetch.
            again = await bot.send(message("hi", service_url=bot.service_url))
            assert again.status_code == 401
            assert time.monotonic() - started < 2.5
            assert keys.fetches() == 1


async def test_a_token_signed_with_the_published_key_is_accepted(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True) as bot:
        reply = await bot.ask()
        assert reply.authorization == f"Bearer {CONNECTOR_TOKEN}"  # the bot's own token, for its reply
        assert bot.keys is not None and bot.keys.fetches() == 1


@pytest.mark.parametrize(
    ("case", "claims", "header_kid"),
    [
        ("signed by another key", {}, KEY_ID),
        ("a key id Microsoft never published", {}, "no-such-key"),
        ("another app's token", {"aud": "another-app"}, KEY_ID),
        ("expired", {"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, KEY_ID),
        ("for another serviceUrl", {"serviceurl": "https://smba.trafficmanager.net/emea/"}, KEY_ID),
    ],
)
async def test_a_bad_token_is_401(tmp_path: Path, case: str, claims: dict[str, Any], header_kid: str) -> None:
    async with running_teams_bot(tmp_path, authenticated=True) as bot:
        assert bot.keys is not None
        key = forged_key() if case == "signed by another key" else bot.keys.private_key
        payload = {
            "iss": "https://api.botframework.com",
            "aud": APP_ID,
            "serviceurl": bot.service_url,
            "nbf": int(time.time()) - 10,
            "exp": int(time.time()) + 3600,
        } | claims
        token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": header_kid})
        response = await bot.send(message("hi", service_url=bot.service_url), headers=bearer(token))
        assert response.status_code == 401, case
        await bot.settled()
        assert bot.connector.received == []


# --- the key cache itself, on a clock the test turns -----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_keys_are_kept_and_an_unknown_key_id_refetches_at_most_every_few_minutes() -> None:
    clock = Clock()
    with KeyServer() as server:
        keys = SigningKeys(server.metadata_url, clock=clock)
        assert (await keys.get(KEY_ID)).endorsements == ["msteams"]
        for _ in range(3):
            with pytest.raises(UnverifiableToken):
                await keys.get("forged-key-id")
        assert server.fetches() == 1
        clock.now += signing_keys.UNKNOWN_KEY_EVERY + 1
        with pytest.raises(UnverifiableToken):
            await keys.get("forged-key-id")
        await keys.get(KEY_ID)
        assert server.fetches() == 2
        clock.now += signing_keys.KEEP_FOR + 1  # a day on: fetched again even for a known key
        await keys.get(KEY_ID)
        assert server.fetches() == 3


async def test_after_a_failed_fetch_the_keys_are_not_asked_for_again_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing_keys, "FETCH_TIMEOUT", 0.2)
    clock = Clock()
    with KeyServer(delay=1.0) as server:
        keys = SigningKeys(server.metadata_url, clock=clock)
        for _ in range(3):
            with pytest.raises(UnverifiableToken):
                await keys.get(KEY_ID)
        assert server.fetches() == 1
        server.delay = 0.0
        clock.now += signing_keys.RETRY_AFTER_FAILURE + 1
        assert (await keys.get(KEY_ID)).public_key is not None
        assert server.fetches() == 2


async def test_botbuilder_gets_its_keys_through_the_cache() -> None:
    from botframework.connector.auth import jwt_token_extractor

    signing_keys.install()
    assert jwt_token_extractor.JwtTokenExtractor.get_open_id_metadata("https://example.invalid/a") is not None
    assert isinstance(
        jwt_token_extractor.JwtTokenExtractor.metadataCache["https://example.invalid/a"], SigningKeys
    )
