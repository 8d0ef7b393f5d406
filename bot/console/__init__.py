"""The browser console, served by the bot process on `PORT`: chat with the bot, review corrections,
run the model, watch its quality. No CDN, no build step: server-rendered pages (Jinja2), one small
script for the chat, charts drawn as inline SVG on the server.

Routes, the stable element ids the end-to-end test drives, and who may use what: docs/console.md.
Stored exactly like Slack's: the same pipeline records question and answer (platform "web"); votes,
corrections, reviews, retrains and rollbacks go through the same `Records`, review desk and admin
commands.
"""

from bot.console.app import install
from bot.console.core import PLATFORM, Console, ConsoleDeps

__all__ = ["PLATFORM", "Console", "ConsoleDeps", "install"]
