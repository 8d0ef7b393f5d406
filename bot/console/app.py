"""Puts the console's routes on the bot's aiohttp app."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.console import chat, login, model, quality, review
from bot.console.core import CONSOLE, Console, ConsoleDeps

STATIC = Path(__file__).resolve().parent / "static"


async def home(_: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/")


async def console_root(_: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/")


def install(app: web.Application, deps: ConsoleDeps) -> Console:
    console = Console(deps)
    app[CONSOLE] = console
    app.router.add_get("/", home)
    app.router.add_get("/console", console_root)
    for module in (chat, login, review, model, quality):
        app.router.add_routes(module.routes())
    app.router.add_static("/console/static/", STATIC, append_version=False)
    return console
