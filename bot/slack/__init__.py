"""Slack: questions in threads, answers with sources and feedback controls, votes, reactions and
corrections recorded. `translate` and `blocks` translate (pure functions); `listeners` ack,
translate, call the pipeline, reply and record; `app` builds the Bolt app; `gate` lets only signed
requests that Bolt can read through to it over HTTP."""

from bot.slack.app import build_slack_app
from bot.slack.deps import Deps

__all__ = ["Deps", "build_slack_app"]
