"""The Teams app package: `teams/manifest.json` with its placeholders filled in, and its two icons,
zipped, ready to upload in Teams (Apps → Manage your apps → Upload an app) or the Teams admin center.

    python -m chatbot.teams_package --domain chatbot.example.com --website https://intranet.example.com

(`chatbot.teams_package` fills the app id from MICROSOFT_APP_ID and the company from COMPANY_NAME.)
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from urllib.parse import urlparse

TEAMS_DIR = Path(__file__).resolve().parent.parent.parent / "teams"
FILES = ("manifest.json", "color.png", "outline.png")
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class ManifestError(ValueError):
    """A value the package needs is missing or malformed; the message says which and how to fix it."""


def host_of(domain: str) -> str:
    """`chatbot.example.com`, also from `https://chatbot.example.com/api/messages`."""
    domain = domain.strip()
    host = urlparse(domain).netloc if "://" in domain else domain.split("/", 1)[0]
    if not host or " " in host:
        raise ManifestError(
            f"{domain!r} is not a host name; give the bot's public host, e.g. chatbot.example.com."
        )
    return host


def fill(template: str, values: dict[str, str]) -> dict[str, object]:
    """The manifest with every `{{NAME}}` replaced; JSON-escaped, so any company name is safe."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if not values.get(m)})
    if missing:
        raise ManifestError(f"The manifest needs {', '.join(missing)}.")
    text = _PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1], template)
    manifest: dict[str, object] = json.loads(text)
    return manifest


def build_package(
    out: Path, *, app_id: str, domain: str, website: str, company: str, source: Path = TEAMS_DIR
) -> Path:
    app_id = app_id.strip()
    if not _GUID.match(app_id):
        raise ManifestError(
            f"The app id {app_id!r} is not a GUID: use the Microsoft App ID of the bot's Azure registration "
            "(MICROSOFT_APP_ID or --app-id)."
        )
    if not website.startswith("https://"):
        raise ManifestError(f"Teams needs an https:// web address for the developer, not {website!r}.")
    values = {
        "MICROSOFT_APP_ID": app_id,
        "BOT_DOMAIN": host_of(domain),
        "WEBSITE_URL": website,
        "COMPANY_NAME": company.strip(),
    }
    manifest = fill((source / "manifest.json").read_text(encoding="utf-8"), values)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        # Teams wants the files at the root of the zip, not in a folder.
        package.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for name in FILES[1:]:
            package.write(source / name, name)
    return out
