"""What every harness shares that stands in for nothing: an aiohttp app served on a local port, a
migrated SQLite store of its own, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from feedback import migrate
from feedback.db import Database


def migrated_database(path: Path) -> Database:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return Database(url)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on a random local port; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def eventually(check: Callable[[], Awaitable[object] | object], timeout: float = 10.0) -> None:
    """Poll a condition (a plain or an async function) until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
