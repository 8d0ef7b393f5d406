"""The browser console, served by the bot process on `PORT`: chat with the bot, review corrections,
run the model, watch its quality. No CDN, no build step: server-rendered pages (Jinja2), one small
script for the chat, charts drawn as inline SVG on the server.

Routes (element ids / `data-testid`s in brackets are stable: the end-to-end test drives them)
    GET  /                          303 to /console/
    GET  /console/                  chat page [#question, #ask, #user-name; each answer is
                                    article[data-testid=answer][data-answer-id] holding
                                    [data-testid=answer-text], [data-testid=sources] (li per source),
                                    buttons [data-testid=vote-up] / [data-testid=vote-down]
                                    (aria-pressed=true when chosen), [data-testid=suggest-correction]
                                    opening [data-testid=correction-text] + [data-testid=correction-submit],
                                    and [data-testid=answer-status] saying what was recorded]
    POST /console/api/ask           JSON {"question", "user"?} -> text/event-stream:
                                      event: status  {"stage": "thinking"}
                                      event: delta   {"text"}  (0 or more: the answer as it is written;
                                                      the texts add up to the answer's "text")
                                      event: answer  {"answer_id", "question_id", "text", "sources":
                                                      [{"title","source","url","score"}], "adapter",
                                                      "confidence", "covered"}
                                      event: error   {"message"}   (a sentence for people, never a trace)
    POST /console/api/vote          JSON {"answer_id", "value": 1 | -1 | 0 (withdraw), "user"?}
                                      -> {"ok", "value"}
    POST /console/api/correction    JSON {"answer_id", "text", "user"?} -> {"ok", "correction_id", "status"}
    GET  /console/login             sign-in form [#login-form, #login-token, #login-submit,
                                    [data-testid=login-error] after a wrong token]
    POST /console/login             form token, next -> 303 to next with the admin cookie; 401 + form;
                                    400 for a body that is not a readable form
    POST /console/logout            clears the admin cookie
    GET  /console/review            admin: the correction queue, most urgent first
                                    [article[data-testid=review-case][data-correction-id] with forms
                                    [data-testid=approve], [data-testid=edit] (textarea name=text),
                                    [data-testid=reject] (input name=reason); [data-testid=notice],
                                    [data-testid=review-warning] when the author or card was not told]
    POST /console/review/{id}/approve | /edit (text) | /reject (reason)      admin, CSRF-checked;
                                    404 for an id no correction has
    GET  /console/model             admin: active adapter [data-testid=active-adapter], versions
                                    [data-testid=adapter-row], runs [data-testid=run-row] with loss curves,
                                    buttons [data-testid=retrain] and [data-testid=rollback], adapter
                                    switches [data-testid=admin-action-row] and refused admin attempts
                                    [data-testid=refused-row] (Slack, Teams, the console)
    POST /console/model/retrain | /console/model/rollback                   admin, CSRF-checked
    GET  /console/model/adapters/{name}/loss_curve.png   the PNG in that registered version's folder
    GET  /console/quality?days=30   admin: charts as inline <svg> [data-testid=chart-rate-by-adapter,
                                    chart-rate-by-day, chart-answers-by-day, chart-most-downvoted]
    GET  /console/static/{file}     the chat script and the stylesheet
    GET  /healthz, GET /metrics     (bot.server, bot.metrics) outside the console

Who may use what
  - Chat: open to requests from this machine (loopback, no X-Forwarded-For); from elsewhere it needs
    the admin login, unless CONSOLE_CHAT_OPEN=true opens it to everyone who can reach the port.
    The asker's user id is the name typed in #user-name, else an anonymous id kept in a cookie.
  - Admin pages (review, model, quality): need CONSOLE_USERS (a token per reviewer) or ADMIN_TOKEN
    (one admin); without either they say how to enable them. Login flow: GET an admin page -> 303 to
    /console/login?next=<page>; POST your token -> a signed, HttpOnly, SameSite=Strict cookie valid
    12 hours naming the identity the token belongs to (`console:NAME`, `console:admin` for
    ADMIN_TOKEN), recorded as the reviewer and the retrain requester: never a typed name, so k-of-n
    review counts distinct people. Changing a person's token signs them out. A wrong token gets 401,
    a clear message, a warning in the log with the client's address and a refused-attempt record;
    too many wrong tries from one address in a minute get 429. Admin POSTs need the cookie, a CSRF
    token in the form (a hidden `csrf` field every admin form carries) and, when the browser sends
    one, an Origin matching the Host; refused ones are recorded. JSON/API calls to admin routes
    without login get 401.

Stored exactly like Slack's: the same pipeline records question and answer (platform "web"), votes go
through `Records.vote` / `withdraw` (source "console"), corrections through the review desk's
`submit`; reviews through `ReviewDesk.decide`, retrain and rollback through `AdminCommands`.
"""

from bot.console.app import install
from bot.console.core import PLATFORM, Console, ConsoleDeps

__all__ = ["PLATFORM", "Console", "ConsoleDeps", "install"]
