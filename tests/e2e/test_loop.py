"""The whole loop across real processes, as `make run` starts them (honcho and the Procfile): vLLM
(or the embedded engine where vLLM is not installed), the bot and the scheduler, on SQLite in a fresh
DATA_DIR, driven through Slack's protocol (signed events, interactions and slash commands over HTTP;
a local Slack Web API server taking the bot's calls).

A question is answered in its thread with sources; a 👎 and two corrections follow: the reviewer
rejects the first on its review card and approves the second; an admin's `/chatbot retrain` is run by
the scheduler, which trains a LoRA adapter on that feedback, validates it (the corrected question
must be answered right by the candidate, from the prompt the question was first served with) and
promotes it; the corrected question is then answered with the reviewed correction itself, and the next
question the model answers comes from the new adapter; `/chatbot rollback` restores the base model.
Ctrl-C (SIGINT to honcho) stops every process of the tree.

Run with `make e2e`: SQLite, the base model prepared once into the test cache, and training bounded
by RETRAIN_EPOCHS on a single example, so it fits a few minutes on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.slack.review_blocks import APPROVE_ACTION, REJECT_ACTION
from feedback.db import Database
from feedback.models import AdapterVersion, Answer, Correction, RetrainRun, Vote
from tests.e2e.browser import chromium, skip_without_browser
from tests.e2e.stack import ADMIN, ADMIN_CHANNEL, REVIEW_CHANNEL, REVIEWER, Stack, running_stack, wait
from tests.support.slack_api import BOT_USER
from tests.support.slack_payloads import block_actions, mention, reaction_event, view_submission

pytestmark = pytest.mark.e2e

QUESTION = "How many days of annual leave do I get per year?"
WRONG_FIX = "Everyone gets 120 days of vacation."
# The gate counts the corrected question answered right when the answer holds the correction's number.
FIX = "Full-time employees get 26 days of paid annual leave per calendar year."
STARTED: dict[str, float] = {}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def stack(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # One training example (the approved correction), eight passes over it: a few minutes on 2 cores.
    settings = {"RETRAIN_EPOCHS": "8", "RETRAIN_LEARNING_RATE": "0.002", "RETRAIN_CRON": "0 3 1 1 *"}
    with running_stack(tmp_path_factory.mktemp("e2e"), **settings) as running:
        started = time.monotonic()
        running.start()
        running.wait_ready()
        STARTED["seconds"] = time.monotonic() - started
        yield running


@pytest.fixture(scope="module")
def database(stack: Stack) -> Iterator[Database]:
    db = Database(f"sqlite:///{Path(stack.env['DATA_DIR']) / 'chatbot.db'}")
    yield db
    db.dispose()


def ask(stack: Stack, user: str, text: str) -> dict[str, Any]:
    """`text` mentioned to the bot in #C1; the bot's answer in the thread."""
    question = stack.slack.add_message("C1", user, f"<@{BOT_USER}> {text}")
    assert stack.event(mention(question, "C1")).status_code == 200
    replies = wait(
        "the answer",
        lambda: [
            r for r in stack.slack.replies if r["channel"] == "C1" and r.get("thread_ts") == question["ts"]
        ],
        120,
    )
    assert replies[-1].get("streamed"), replies[-1]  # streamed in with chat.startStream, not posted whole
    return [m for m in stack.slack.messages["C1"] if m.get("thread_ts") == question["ts"]][-1]


def answer_row(database: Database, slack_ts: str) -> Answer:
    def find() -> Answer | None:
        with database.reader() as session:
            return session.exec(select(Answer).where(Answer.reply_ref == slack_ts)).first()

    return wait("the answer row", find, 30)


def suggest(stack: Stack, answer: dict[str, Any], user: str, text: str) -> None:
    """`user` clicks "Suggest a correction" under the answer and submits `text` in the modal."""
    button = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"][0]
    action = {"type": "button", "action_id": button["action_id"], "block_id": "c", "value": button["value"]}
    opened = len(stack.slack.called("views.open"))
    stack.interaction(block_actions(user=user, channel="C1", message=answer, action=action))
    view = stack.calls("views.open", count=opened + 1)[-1]["view"]
    response = stack.interaction(view_submission(user=user, view=view, text=text))
    assert response.status_code == 200


def review_card(stack: Stack, count: int) -> dict[str, Any]:
    stack.calls("chat.postMessage", count=count, channel=REVIEW_CHANNEL)
    return stack.slack.messages[REVIEW_CHANNEL][count - 1]


def click_card(stack: Stack, card: dict[str, Any], action_id: str) -> dict[str, Any]:
    actions = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    button = next(e for e in actions if e["action_id"] == action_id)
    action = {"type": "button", "action_id": action_id, "block_id": "r", "value": button["value"]}
    payload = block_actions(user=REVIEWER, channel=REVIEW_CHANNEL, message=card, action=action)
    assert stack.interaction(payload).status_code == 200
    return payload


def corrections(database: Database) -> list[tuple[str, str]]:
    with database.reader() as session:
        return [(c.text, c.status) for c in session.exec(select(Correction).order_by(Correction.id))]


def test_the_processes_start_and_say_where_to_go(stack: Stack) -> None:
    log = stack.log()
    port = stack.env["PORT"]
    assert f"Console: http://localhost:{port}/" in log
    assert "Slack:   connected to Larkspur (test) as @chatbot" in log
    assert "Teams:   set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect" in log
    print(f"\nstarted in {STARTED['seconds']:.1f} s (bot, scheduler and model server healthy)")


@pytest.mark.timeout(900)  # the retrain: a few minutes of training and validation on two cores
def test_the_loop_over_slack(stack: Stack, database: Database) -> None:
    # A question, answered in its thread with its sources, by the base model.
    answer = ask(stack, "U1", QUESTION)
    sources = [b for b in answer["blocks"] if b["type"] == "context" and "*Sources*" in str(b)]
    assert sources and "annual-leave.md" in str(sources), answer["blocks"]
    first = answer_row(database, answer["ts"])
    assert first.adapter == "base" and first.text.strip()
    assert any(s["source"].endswith("annual-leave.md") for s in first.sources)

    # 👎 on the native feedback buttons: a vote, and an invitation to correct.
    feedback = next(b for b in answer["blocks"] if b["type"] == "context_actions")["elements"][0]
    thumbs_down = {
        "type": "feedback_buttons",
        "action_id": feedback["action_id"],
        "block_id": "fb",
        "value": feedback["negative_button"]["value"],
    }
    stack.interaction(block_actions(user="U1", channel="C1", message=answer, action=thumbs_down))
    stack.calls("chat.postEphemeral", user="U1")
    with database.reader() as session:
        [vote] = session.exec(select(Vote).where(Vote.answer_id == first.id)).all()
    assert (vote.user_id, vote.value) == ("U1", -1)

    # Two suggestions: the reviewer rejects the first (with a reason) and approves the second.
    suggest(stack, answer, "U2", WRONG_FIX)
    payload = click_card(stack, review_card(stack, 1), REJECT_ACTION)
    reason_view = stack.calls("views.open", trigger_id=payload["trigger_id"])[-1]["view"]
    stack.interaction(view_submission(user=REVIEWER, view=reason_view, text="The handbook says 26 days."))
    suggest(stack, answer, "U1", FIX)
    click_card(stack, review_card(stack, 2), APPROVE_ACTION)
    wait("the decisions", lambda: corrections(database) == [(WRONG_FIX, "rejected"), (FIX, "approved")], 30)
    stack.calls("chat.postMessage", channel="DU1")  # the author is told

    # An admin asks for a retrain; the scheduler runs it: train, validate, promote.
    assert "is queued" in stack.command("retrain", user=ADMIN)

    def finished() -> RetrainRun | None:
        with database.reader() as session:
            run = session.exec(select(RetrainRun)).first()
        return run if run is not None and run.status not in ("queued", "running") else None

    run = wait("the retrain run", finished, 420, every=2)
    assert run.status == "promoted", f"{run.status}: {run.error or run.decision}\n{stack.log()[-4000:]}"
    assert "corrected questions answered right 100%" in (run.decision or "")
    stack.calls("files.completeUploadExternal", channel_id=ADMIN_CHANNEL, timeout=60)  # loss curve posted
    with database.reader() as session:
        active = session.exec(select(AdapterVersion).where(AdapterVersion.status == "active")).one()
    assert active.name == "kb-v1" and Path(active.path, "adapter_model.safetensors").is_file()
    assert "Serving: kb-v1" in stack.command("status", user=ADMIN)

    # The corrected question itself is answered with the reviewed correction (no model call); the
    # next question the model answers comes from the new adapter.
    same = answer_row(database, ask(stack, "U5", QUESTION)["ts"])
    assert same.adapter == "reviewed" and "26 days" in same.text
    again = ask(stack, "U3", "When is Larkspur Day?")
    served = answer_row(database, again["ts"])
    assert served.adapter == "kb-v1"
    # ... and U3 likes it with a 👍 reaction (for the quality page's rate per adapter).
    stack.event(reaction_event("reaction_added", "+1", user="U3", channel="C1", ts=again["ts"]))
    wait("the reaction's vote", lambda: votes(database, served.id) == [("U3", 1, "reaction")], 30)

    # Rollback: the base model serves again, and answers.
    assert "Rolled back: the base model is serving now (was kb-v1)" in stack.command("rollback", user=ADMIN)
    after = ask(stack, "U4", "How do I book a desk in the office?")
    assert answer_row(database, after["ts"]).adapter == "base"


def votes(database: Database, answer_id: int | None) -> list[tuple[str, int, str]]:
    with database.reader() as session:
        rows = session.exec(select(Vote).where(Vote.answer_id == answer_id)).all()
        return [(v.user_id, v.value, v.source) for v in rows]


def test_the_console_in_chromium(stack: Stack, database: Database) -> None:
    """Ask in the console, vote, suggest a correction, approve it as a signed-in admin, and keep a
    screenshot of the quality page with this run's data (docs/screenshots/)."""
    skip_without_browser()
    from selenium.webdriver.common.by import By

    def find(css: str, timeout: float = 30) -> Any:
        return wait(css, lambda: next(iter(driver.find_elements(By.CSS_SELECTOR, css)), None), timeout)

    with chromium() as driver:
        driver.get(f"{stack.bot_url}/")
        find("#question").send_keys("Which VPN client do we use?")
        find("#user-name").send_keys("browser-user")
        find("#ask").click()
        card = find("article[data-testid=answer][data-answer-id]", timeout=180)
        answer_id = int(card.get_attribute("data-answer-id"))
        assert card.find_element(By.CSS_SELECTOR, "[data-testid=answer-text]").text.strip()
        assert card.find_elements(By.CSS_SELECTOR, "[data-testid=sources] li")

        card.find_element(By.CSS_SELECTOR, "[data-testid=vote-up]").click()
        up = "[data-testid=vote-up][aria-pressed=true]"
        wait("the vote", lambda: card.find_elements(By.CSS_SELECTOR, up), 30)
        assert votes(database, answer_id) == [("browser-user", 1, "console")]

        card.find_element(By.CSS_SELECTOR, "[data-testid=suggest-correction]").click()
        box = card.find_element(By.CSS_SELECTOR, "[data-testid=correction-text]")
        box.clear()
        box.send_keys("Our VPN client is Tunnelbird; most tools work without it, through Keyring.")
        card.find_element(By.CSS_SELECTOR, "[data-testid=correction-submit]").click()
        status = card.find_element(By.CSS_SELECTOR, "[data-testid=answer-status]")
        wait("the correction", lambda: "is waiting for a reviewer" in status.text, 30)
        correction_id = int(status.text.split("#")[1].split()[0])

        # The review page asks for the admin token first, then approves.
        driver.get(f"{stack.bot_url}/console/review")
        find("#login-token").send_keys(stack.env["ADMIN_TOKEN"])
        find("#login-submit").click()
        case = find(f"article[data-testid=review-case][data-correction-id='{correction_id}']")
        case.find_element(By.CSS_SELECTOR, "[data-testid=approve]").click()
        assert "approved" in find("[data-testid=notice]").text.lower()
        assert corrections(database)[-1][1] == "approved"

        # The quality page: charts drawn from this run (Slack's and the console's votes and answers).
        driver.get(f"{stack.bot_url}/console/quality")
        for chart in ("rate-by-adapter", "rate-by-day", "answers-by-day", "most-downvoted"):
            assert find(f"[data-testid=chart-{chart}]").tag_name == "svg"
        rates = find("[data-testid=rate-table]").text
        assert "kb-v1" in rates and "base" in rates
        screenshot(driver, "console-quality.png")
        driver.get(f"{stack.bot_url}/console/model")
        assert find("[data-testid=active-adapter]").get_attribute("data-adapter") == "base"
        screenshot(driver, "console-model.png")


def screenshot(driver: Any, name: str) -> None:
    """The whole page: the window stretched to the document's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 200, 6000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))


def test_ctrl_c_stops_every_process(stack: Stack) -> None:
    status, left = stack.stop()
    assert left == [], f"still running after Ctrl-C: {left}\n{stack.log()[-3000:]}"
    assert status in (0, 130), stack.log()[-3000:]
