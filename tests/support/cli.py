"""The `chatbot` command as a user runs it: a real process, settings from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def chatbot(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR", "ENVIRONMENT")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "chatbot", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        input=input,
        text=True,
        timeout=120,
    )
