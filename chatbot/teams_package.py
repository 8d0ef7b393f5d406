"""`python -m chatbot.teams_package`: the Teams app package (`bot.teams.package`), with the app id
from MICROSOFT_APP_ID and the company name from COMPANY_NAME unless given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.teams.package import ManifestError, build_package
from chatbot.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m chatbot.teams_package", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--app-id", default=settings.microsoft_app_id, help="default: MICROSOFT_APP_ID")
    parser.add_argument("--domain", required=True, help="the bot's public host, e.g. chatbot.example.com")
    parser.add_argument(
        "--website", required=True, help="https:// page about the bot (also privacy and terms)"
    )
    parser.add_argument("--company", default=settings.company_name, help="default: COMPANY_NAME")
    parser.add_argument("--out", type=Path, default=Path("chatbot-teams.zip"))
    args = parser.parse_args(argv)
    try:
        path = build_package(
            args.out, app_id=args.app_id, domain=args.domain, website=args.website, company=args.company
        )
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Teams app package written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
