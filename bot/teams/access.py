"""Who may post to `/api/messages`, and where the bot may send replies.

Without Bot Framework authentication (no app id) anyone who can reach the port could speak as any
user, so the endpoint then answers only this machine (the Bot Framework Emulator), unless the
operator opens it. A request forwarded by a proxy is not the Emulator, even when the proxy runs here.
Replies go to the `serviceUrl` the activity names; the bot only sends to Microsoft's Bot Framework
hosts, and in Emulator mode to this machine, so a caller cannot make it post anywhere else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from botbuilder.core import BotAdapter, TurnContext
from botframework.connector.auth import AuthenticationConstants

# Where Teams and the other Bot Framework channels live (Microsoft Learn, "Send proactive messages"
# and the Bot Framework SDK's cloud constants): the public cloud, GCC, GCC High and DoD.
SERVICE_HOSTS = frozenset(
    {
        "smba.trafficmanager.net",
        "smba.infra.gcc.teams.microsoft.com",
        "smba.infra.gov.teams.microsoft.us",
        "smba.infra.dod.teams.microsoft.us",
    }
)
# Any host under these Microsoft-owned domains (Web Chat, Direct Line, their regional and US
# government hosts). Not `*.trafficmanager.net`: anyone with an Azure subscription can name one.
SERVICE_DOMAINS = ("botframework.com", "botframework.azure.us")
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def is_loopback(remote: str | None) -> bool:
    """Whether the peer address is this machine (IPv4, IPv6, or IPv4 mapped into IPv6)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def forwarded(headers: Mapping[str, str]) -> bool:
    """Whether a proxy passed the request on (the Emulator talks to the bot directly)."""
    return any(name in headers for name in PROXY_HEADERS)


def reply_target_allowed(service_url: str | None, *, loopback: bool) -> bool:
    """Whether replies may go to `service_url`: https on a Bot Framework host and its default port,
    or, with `loopback`, any port on this machine (the Emulator listens there)."""
    try:
        parts = urlsplit(str(service_url or ""))
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or not host:
        return False
    if loopback and parts.scheme in ("http", "https") and (host == "localhost" or is_loopback(host)):
        return True
    if parts.scheme != "https" or port not in (None, 443):
        return False
    return host in SERVICE_HOSTS or any(host.endswith("." + domain) for domain in SERVICE_DOMAINS)


def channel_authenticated(context: TurnContext) -> bool:
    """Whether this turn's request carried a valid Bot Framework token (not the anonymous identity
    botbuilder gives every request when authentication is off)."""
    identity = context.turn_state.get(BotAdapter.BOT_IDENTITY_KEY)
    return bool(
        identity is not None
        and identity.is_authenticated
        and identity.authentication_type != AuthenticationConstants.ANONYMOUS_AUTH_TYPE
    )
