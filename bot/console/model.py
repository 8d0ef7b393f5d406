"""The model page: the adapter serving now, the canary (its candidate's 👍 rate against live's, with
intervals, its steps, and buttons to promote or stop it), every version with its figures, recent
retrain runs with their loss curves, and the buttons to retrain now and to roll back (the same
`AdminCommands` as `/chatbot retrain`, `/chatbot rollback` and `/chatbot canary`); beside them, who
switched adapters and the admin attempts that were refused (Slack, Teams, the console), for an admin
to audit both."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.admin import figure, flatten, when
from bot.console.core import admin_action, admin_name, admin_page, console_of
from feedback import canary as canary_rule
from feedback import queries
from feedback.models import AdapterVersion, RetrainRun

# The files a retrain writes into each version's folder (retrain.registry's names; bot/ does not
# import retrain/).
LOSS_CURVE = "loss_curve.png"
MANIFEST = "manifest.json"
RECENT_RUNS = 20
RECENT_AUDIT = 20
NO_ADMIN = "Retrain and rollback are not available in this bot process."


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/model", model_page),
        web.post("/console/model/retrain", retrain),
        web.post("/console/model/rollback", rollback),
        web.post("/console/model/canary/{action:promote|stop}", canary_action),
        web.get(r"/console/model/adapters/{name}/loss_curve.png", loss_curve),
    ]


@dataclass(frozen=True)
class VersionView:
    adapter: AdapterVersion
    figures: list[tuple[str, str]]
    has_curve: bool
    is_rollback_target: bool


@dataclass(frozen=True)
class RunView:
    run: RetrainRun
    figures: list[tuple[str, str]]
    curve_of: str | None  # the adapter whose loss curve to show


def _figures(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, figure(value)) for name, value in flatten(metrics)]


def _curve(adapter: AdapterVersion | None) -> bool:
    return adapter is not None and (Path(adapter.path) / LOSS_CURVE).is_file()


def _manifest_figures(adapter: AdapterVersion) -> dict[str, Any]:
    """The version's metrics as SQL has them, and the gate's figures from its manifest."""
    figures: dict[str, Any] = dict(adapter.metrics)
    try:
        manifest = json.loads((Path(adapter.path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return figures
    if isinstance(manifest, dict) and isinstance(manifest.get("gate"), dict):
        figures["gate"] = manifest["gate"]
    return figures


def _read(console_database: Any) -> dict[str, Any]:
    with console_database.reader() as session:
        active = queries.active_adapter(session)
        adapters = list(reversed(queries.list_adapters(session)))
        possible, target = queries.rollback_target(session)
        runs = queries.recent_runs(session, limit=RECENT_RUNS)
        pending = queries.pending_run(session)
        changes = queries.adapter_history(session, limit=RECENT_AUDIT)
        refusals = queries.recent_refusals(session, limit=RECENT_AUDIT)
    by_name = {a.name: a for a in adapters}
    versions = [
        VersionView(a, _figures(_manifest_figures(a)), _curve(a), possible and a.name == target)
        for a in adapters
    ]
    run_views = [
        RunView(
            r,
            _figures(r.metrics),
            r.candidate if r.candidate and _curve(by_name.get(r.candidate)) else None,
        )
        for r in runs
    ]
    return {
        "canary": canary_rule.current(console_database),
        "active": active,
        "versions": versions,
        "runs": run_views,
        "pending": pending,
        "can_roll_back": possible,
        "rollback_to": target,
        "changes": changes,
        "refusals": refusals,
    }


@admin_page
async def model_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(request: web.Request, *, notice: str | None = None, status: int = 200) -> web.Response:
    console = console_of(request)
    data = await asyncio.to_thread(_read, console.deps.database)
    return console.render(
        request,
        "model.html",
        status=status,
        notice=notice or _notice(request),
        admin_available=console.deps.admin is not None,
        when=when,
        **data,
    )


def _notice(request: web.Request) -> str | None:
    """The last action's reply, handed over across the redirect."""
    return console_of(request).flashed(request.query.get("notice", ""))


def _after(request: web.Request, reply: str) -> web.HTTPSeeOther:
    key = console_of(request).flash(reply.replace("`", ""))
    return web.HTTPSeeOther(f"/console/model?notice={key}")


@admin_action
async def retrain(request: web.Request) -> web.StreamResponse:
    admin = console_of(request).deps.admin
    if admin is None:
        return await _page(request, notice=NO_ADMIN, status=503)
    reply = await admin.retrain_now(admin_name(request))
    raise _after(request, reply.text)


@admin_action
async def rollback(request: web.Request) -> web.StreamResponse:
    admin = console_of(request).deps.admin
    if admin is None:
        return await _page(request, notice=NO_ADMIN, status=503)
    reply = await admin.roll_back(admin_name(request))
    raise _after(request, reply.text)


@admin_action
async def canary_action(request: web.Request) -> web.StreamResponse:
    """Promote the open canary's candidate now, or stop it (the same as `/chatbot canary`)."""
    admin = console_of(request).deps.admin
    if admin is None:
        return await _page(request, notice=NO_ADMIN, status=503)
    reply = await admin.canary(admin_name(request), request.match_info["action"])
    raise _after(request, reply.text)


async def loss_curve(request: web.Request) -> web.StreamResponse:
    """Only a registered version's own file: the name is looked up in SQL, never joined as given."""
    console = console_of(request)
    if console.auth.admin_name(request) is None:
        raise web.HTTPUnauthorized(text="Sign in at /console/login to see the model's figures.")

    def find() -> AdapterVersion | None:
        with console.deps.database.reader() as session:
            return queries.get_adapter(session, request.match_info["name"])

    adapter = await asyncio.to_thread(find)
    path = Path(adapter.path) / LOSS_CURVE if adapter is not None else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="No loss curve for that adapter version.")
    return web.FileResponse(
        path, headers={"Content-Type": "image/png", "Cache-Control": "private, max-age=3600"}
    )
