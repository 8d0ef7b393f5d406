"""Microsoft Teams: questions in personal chats and @mentions, answers with sources and Teams' own
feedback controls, votes, reactions, corrections and admin commands recorded. `translate` and `cards`
translate (pure functions); `questions`, `feedback` and `corrections` handle activities; `bot`
dispatches them; `endpoint` serves `/api/messages` through botbuilder's `CloudAdapter`, with
`access` (who may post, where replies may go) and `signing_keys` (Microsoft's token keys, fetched
without blocking the event loop)."""

from bot.teams.deps import TeamsDeps
from bot.teams.endpoint import TeamsEndpoint

__all__ = ["TeamsDeps", "TeamsEndpoint"]
