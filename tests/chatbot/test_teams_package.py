"""The Teams app package: the manifest in teams/ with its placeholders filled, and valid icons."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.teams.package import TEAMS_DIR, ManifestError, build_package
from bot.teams.translate import ADMIN_COMMANDS
from chatbot.teams_package import main

APP_ID = "c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"


def package(tmp_path: Path, **overrides: str) -> Path:
    values = {
        "app_id": APP_ID,
        "domain": "https://chatbot.example.com/api/messages",
        "website": "https://intranet.example.com/chatbot",
        "company": 'Larkspur "Systems"',
    } | overrides
    return build_package(tmp_path / "app.zip", **values)


def test_the_package_holds_a_filled_manifest_and_the_icons(tmp_path: Path) -> None:
    with zipfile.ZipFile(package(tmp_path)) as zipped:
        assert sorted(zipped.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zipped.read("manifest.json"))
        color = Image.open(io.BytesIO(zipped.read("color.png")))
        outline = Image.open(io.BytesIO(zipped.read("outline.png")))
    assert "{{" not in json.dumps(manifest)
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["validDomains"] == ["chatbot.example.com"]
    assert manifest["developer"]["name"] == 'Larkspur "Systems"'
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    assert (color.size, outline.size) == ((192, 192), (32, 32))
    # the commands Teams suggests are ones the bot knows
    titles = {c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]}
    assert titles <= set(ADMIN_COMMANDS) | {"help"}


def test_the_template_keeps_its_placeholders() -> None:
    template = (TEAMS_DIR / "manifest.json").read_text()
    assert "{{MICROSOFT_APP_ID}}" in template and "{{BOT_DOMAIN}}" in template


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"app_id": ""}, "is not a GUID"),
        ({"app_id": "my-bot"}, "is not a GUID"),
        ({"website": "http://intranet.example.com"}, "https://"),
        ({"domain": ""}, "not a host name"),
        ({"company": " "}, "needs COMPANY_NAME"),
    ],
)
def test_bad_values_are_refused_with_what_to_fix(
    tmp_path: Path, overrides: dict[str, str], problem: str
) -> None:
    with pytest.raises(ManifestError, match=problem):
        package(tmp_path, **overrides)
    assert not (tmp_path / "app.zip").exists()


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "teams.zip"
    args = ["--domain", "chatbot.example.com", "--website", "https://example.com", "--out", str(out)]
    assert main(["--app-id", APP_ID, *args]) == 0
    assert out.exists() and "written to" in capsys.readouterr().out
    assert main(["--app-id", "nope", *args]) == 1
    assert "MICROSOFT_APP_ID" in capsys.readouterr().err
