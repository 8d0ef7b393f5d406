"""Where things are: the repository, and the cache of prepared models the slow tests share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Prepared models survive between test runs here (the repo's ignored data/ folder by default).
TEST_CACHE = Path(os.environ.get("CHATBOT_TEST_CACHE", REPO / "data" / "test-cache"))
