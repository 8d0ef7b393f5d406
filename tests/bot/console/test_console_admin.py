"""The console's admin pages over real HTTP against the bot's real app and store (SQLite and
PostgreSQL): the login (refusals, the signed cookie, throttling), CSRF, the review queue deciding
through the same ReviewDesk as Slack, retrain and rollback through AdminCommands, the loss-curve PNG
from a registered version's folder only, and the quality charts drawn from real rows."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from feedback import queries, store
from feedback.db import Database
from tests.support import feedback_seed as seed
from tests.support.console import ADMIN, TOKEN, Console, running_console

ADMIN_PAGES = ("/console/review", "/console/model", "/console/quality")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def _correction(
    c: Console, text: str = "Full-time staff get 30 days.", question: str = "Leave?"
) -> int:
    answer = await c.answer(question, user="carol")
    response = await c.http.post(
        "/console/api/correction", json={"answer_id": answer["answer_id"], "text": text, "user": "carol"}
    )
    return int(response.json()["correction_id"])


async def test_admin_pages_send_strangers_to_the_login(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        for page in ADMIN_PAGES:
            response = await c.http.get(page, follow_redirects=False)
            assert response.status_code == 303, page
            assert response.headers["Location"] == f"/console/login?next={page}"
        for action in ("/console/review/1/approve", "/console/model/retrain", "/console/model/rollback"):
            response = await c.http.post(action, data={"csrf": "x"})
            assert response.status_code == 401, action
            assert 'id="login-form"' in response.text
        with_query = await c.http.get("/console/quality?days=7&x=1", follow_redirects=False)
        assert with_query.headers["Location"].startswith("/console/login?next=")
        login_page = await c.http.get(with_query.headers["Location"])
        assert 'name="next" value="/console/quality?days=7&amp;x=1"' in login_page.text
        curve = await c.http.get("/console/model/adapters/kb-v1/loss_curve.png")
        assert curve.status_code == 401
        with database.reader() as s:
            assert queries.recent_runs(s) == []


async def test_without_admin_token_admin_pages_say_how_to_enable_them(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path, admin_token="") as c:
        for page in (*ADMIN_PAGES, "/console/login"):
            response = await c.http.get(page)
            assert response.status_code == 403, page
            assert 'data-testid="admin-off"' in response.text and "ADMIN_TOKEN" in response.text
        refused = await c.http.post("/console/login", data={"token": ""})
        assert refused.status_code == 403 and "console_admin" not in refused.cookies


async def test_a_wrong_token_is_refused_clearly_and_logged(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_console(database, tmp_path) as c:
        with caplog.at_level(logging.WARNING, logger="bot.console.auth"):
            response = await c.login(token="not-the-token")
        assert response.status_code == 401
        assert 'data-testid="login-error"' in response.text and "not a console token" in response.text
        assert "console_admin" not in c.http.cookies
        assert any("wrong token from 127.0.0.1" in r.getMessage() for r in caplog.records)
        assert TOKEN not in caplog.text
        still = await c.http.get("/console/review", follow_redirects=False)
        assert still.status_code == 303


async def test_the_right_token_signs_in_with_a_strict_httponly_cookie(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        response = await c.login()
        assert response.status_code == 303 and response.headers["Location"] == "/console/review"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        for page in ADMIN_PAGES:
            page_response = await c.http.get(page)
            assert page_response.status_code == 200, page
            assert f'data-testid="admin-name">{ADMIN}<' in page_response.text


async def test_login_only_goes_back_to_console_pages(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        response = await c.http.post("/console/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert response.headers["Location"] == "/console/review"


async def test_a_tampered_or_outdated_cookie_is_not_a_login(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        good = c.http.cookies["console_admin"]
        payload, signature = good.split(".")
        c.http.cookies.clear()
        c.http.cookies.set("console_admin", f"{payload}.{signature[:-2]}xx")
        assert (await c.http.get("/console/model", follow_redirects=False)).status_code == 303
    # a new ADMIN_TOKEN signs everyone out
    async with running_console(database, tmp_path, admin_token="another-token-entirely") as c:
        c.http.cookies.set("console_admin", good)
        assert (await c.http.get("/console/model", follow_redirects=False)).status_code == 303


async def test_too_many_wrong_tokens_are_throttled(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        for _ in range(5):
            assert (await c.login(token="guess")).status_code == 401
        throttled = await c.login()
        assert throttled.status_code == 429 and "wait a minute" in throttled.text
        assert "console_admin" not in c.http.cookies


async def test_a_typed_name_at_login_is_ignored(database: Database, tmp_path: Path) -> None:
    """The identity comes from the token: typing a Slack admin's id changes nothing."""
    async with running_console(database, tmp_path) as c:
        response = await c.login(name="UADMIN")
        assert response.status_code == 303
        page = await c.http.get("/console/review")
        assert f'data-testid="admin-name">{ADMIN}<' in page.text and "UADMIN" not in page.text


async def test_admin_posts_need_the_csrf_token_and_this_origin(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        csrf = await c.csrf()
        no_token = await c.http.post("/console/model/retrain", data={})
        assert no_token.status_code == 403 and "Reload the page" in no_token.text
        other_site = await c.http.post(
            "/console/model/retrain", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        with database.reader() as s:
            assert queries.recent_runs(s) == []


async def test_the_queue_in_priority_order_and_approve(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        first = await _correction(c, question="Leave?")
        second = await _correction(c, question="Parking?")
        with database.reader() as s:
            disliked = queries.corrections(s)[1].answer_id
        with database.writer() as s:  # the second answer got two 👎: it is more urgent
            for user in ("u1", "u2"):
                store.record_vote(s, answer_id=disliked, user_id=user, value=-1, source="button")
        await c.login()
        page = (await c.http.get("/console/review")).text
        order = [int(i) for i in re.findall(r'data-testid="review-case" data-correction-id="(\d+)"', page)]
        assert order == [second, first]

        csrf = await c.csrf("/console/review")
        response = await c.http.post(f"/console/review/{first}/approve", data={"csrf": csrf})
        assert response.status_code == 303
        after = await c.http.get(response.headers["Location"])
        assert f"Correction #{first} approved. It is in the knowledge base now." in after.text
        assert f'data-correction-id="{first}"' not in after.text
        case = c.deps.review.case(first)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "approved" and case.approvals == [ADMIN]
        hits = c.knowledge.search("Full-time staff get 30 days", k=3)
        assert any(h.source == f"correction:{first}" for h in hits)

        again = await c.http.post(f"/console/review/{first}/approve", data={"csrf": csrf})
        assert again.status_code == 409 and "review-error" in again.text


async def test_edit_and_reject_from_the_console(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        edited_id = await _correction(c)
        rejected_id = await _correction(c, text="Everyone gets 100 days.")
        await c.login()
        csrf = await c.csrf("/console/review")

        empty = await c.http.post(f"/console/review/{edited_id}/edit", data={"csrf": csrf, "text": " "})
        assert empty.status_code == 400 and "Write the corrected answer" in empty.text
        edit = await c.http.post(
            f"/console/review/{edited_id}/edit", data={"csrf": csrf, "text": "Full-time staff get 28 days."}
        )
        assert edit.status_code == 303
        case = c.deps.review.case(edited_id)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "approved"
        assert case.correction.text == "Full-time staff get 28 days."

        no_reason = await c.http.post(f"/console/review/{rejected_id}/reject", data={"csrf": csrf})
        assert no_reason.status_code == 400 and "Say why" in no_reason.text
        reject = await c.http.post(
            f"/console/review/{rejected_id}/reject",
            data={"csrf": csrf, "reason": "Not what the policy says."},
        )
        assert reject.status_code == 303 and "done=rejected" in reject.headers["Location"]
        case = c.deps.review.case(rejected_id)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "rejected"
        assert [(r.reviewer, r.reason) for r in case.reviews] == [(ADMIN, "Not what the policy says.")]

        unknown = await c.http.post("/console/review/9999/approve", data={"csrf": csrf})
        assert unknown.status_code == 404 and "There is no correction #9999" in unknown.text


async def test_the_retrain_button_queues_a_run_once(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        csrf = await c.csrf()
        response = await c.http.post("/console/model/retrain", data={"csrf": csrf})
        assert response.status_code == 303
        page = await c.http.get(response.headers["Location"])
        with database.reader() as s:
            [run] = queries.recent_runs(s)
        assert (run.status, run.trigger, run.requested_by) == ("queued", "admin", ADMIN)
        assert f"Retrain #{run.id} is queued" in page.text
        assert 'data-testid="pending-run"' in page.text

        twice = await c.http.post("/console/model/retrain", data={"csrf": csrf}, follow_redirects=True)
        assert f"Retrain #{run.id} is already queued" in twice.text
        with database.reader() as s:
            assert len(queries.recent_runs(s)) == 1


async def test_the_rollback_button(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        seed.adapters(database, "kb-v1", "kb-v2")
        await c.login()
        page = await c.http.get("/console/model")
        assert 'data-testid="active-adapter" data-adapter="kb-v2"' in page.text
        csrf = await c.csrf()
        response = await c.http.post("/console/model/rollback", data={"csrf": csrf}, follow_redirects=True)
        assert "Rolled back: kb-v1 is serving now (was kb-v2)." in response.text
        assert 'data-testid="active-adapter" data-adapter="kb-v1"' in response.text
        with database.reader() as s:
            active = queries.active_adapter(s)
            change = queries.adapter_history(s, limit=1)[0]
        assert active is not None and active.name == "kb-v1"
        assert (change.action, change.actor) == ("rollback", ADMIN)


async def test_the_model_page_shows_the_canary_and_stops_it(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        seed.adapters(database, "kb-v1")
        with database.writer() as s:
            store.register_adapter(s, name="kb-v2", path="/adapters/kb-v2", base_model="smollm2")
            store.open_canary(s, candidate="kb-v2", live="kb-v1", share=0.2, run_id=None, note="kb-v2 opened")
        seed.votes(database, adapter="kb-v2", up=3, down=1)
        seed.votes(database, adapter="kb-v1", up=10, down=0)
        await c.login()
        page = (await c.http.get("/console/model")).text
        assert 'data-testid="canary" data-status="running" data-candidate="kb-v2"' in page
        side = re.search(
            r'data-model="kb-v2"><th>kb-v2</th><td>3</td><td>1</td>\s*<td>75%</td>\s*<td>(\d+)–(\d+)%', page
        )
        assert side is not None and int(side.group(1)) < 75 < int(side.group(2))
        assert "kb-v2 opened" in page and 'data-testid="canary-stop"' in page
        csrf = await c.csrf()
        response = await c.http.post("/console/model/canary/stop", data={"csrf": csrf}, follow_redirects=True)
        assert "Stopped: every question goes to kb-v1 again; kb-v2 is rolled back." in response.text
        assert 'data-testid="canary-status">stopped</strong>' in response.text
        assert 'data-testid="canary-stop"' not in response.text
        with database.reader() as s:
            canary = queries.latest_canary(s)
        assert canary is not None and (canary.status, canary.decided_by) == ("stopped", ADMIN)
        bad = await c.http.post("/console/model/canary/merge", data={"csrf": csrf})
        assert bad.status_code in (404, 405)


async def test_the_model_page_shows_versions_runs_and_loss_curves(database: Database, tmp_path: Path) -> None:
    folder = tmp_path / "adapters" / "kb-v1"
    folder.mkdir(parents=True)
    (folder / "loss_curve.png").write_bytes(PNG)
    (folder / "manifest.json").write_text('{"gate": {"passed": true, "candidate": {"liked_rate": 0.75}}}')
    (tmp_path / "secret.png").write_bytes(b"not for you")
    with database.writer() as s:
        store.register_adapter(
            s, name="kb-v1", path=str(folder), base_model="smollm2", metrics={"train_loss": 1.23456}
        )
        run = store.queue_run(s, trigger="admin", requested_by="ada")
        store.start_run(s, run_id=run.id or 0)
        store.finish_run(
            s,
            run_id=run.id or 0,
            status="promoted",
            candidate="kb-v1",
            decision="better on liked answers",
            metrics={"training": {"train_loss": 1.23456, "loss_history": [1, 2]}},
        )
        store.activate_adapter(s, name="kb-v1", actor="retrain")
    async with running_console(database, tmp_path) as c:
        await c.login()
        page = (await c.http.get("/console/model")).text
        assert 'data-testid="adapter-row" data-adapter="kb-v1" data-status="active"' in page
        assert "train_loss" in page and "1.235" in page and "gate.candidate.liked_rate" in page
        assert 'data-testid="run-row"' in page and "better on liked answers" in page
        assert "/console/model/adapters/kb-v1/loss_curve.png" in page

        curve = await c.http.get("/console/model/adapters/kb-v1/loss_curve.png")
        assert curve.status_code == 200 and curve.content == PNG
        assert curve.headers["Content-Type"] == "image/png"
        for name in ("kb-v9", "..%2Fsecret", "%2E%2E"):
            missing = await c.http.get(f"/console/model/adapters/{name}/loss_curve.png")
            assert missing.status_code == 404, name
            assert b"not for you" not in missing.content


async def test_the_quality_page_draws_charts_from_real_rows(database: Database, tmp_path: Path) -> None:
    seed.votes(database, adapter="kb-v1", up=1, down=3)
    seed.votes(database, adapter="kb-v2", up=3, down=1)
    async with running_console(database, tmp_path) as c:
        await c.answer("Where is the parking?")
        await c.login()
        page = await c.http.get("/console/quality")
        assert page.status_code == 200
        html = page.text
        for chart in (
            "chart-rate-by-adapter",
            "chart-rate-by-day",
            "chart-answers-by-day",
            "chart-most-downvoted",
        ):
            assert f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-testid="{chart}"' in html
        rate_chart = html.split('data-testid="chart-rate-by-adapter"')[1].split("</svg>")[0]
        bars = re.findall(r'data-label="([^"]+)" data-value="([^"]+)"', rate_chart)
        assert bars == [("kb-v1", "0.25"), ("kb-v2", "0.75")]
        answers_chart = html.split('data-testid="chart-answers-by-day"')[1].split("</svg>")[0]
        assert [float(v) for v in re.findall(r'data-value="([^"]+)"', answers_chart)] == [9.0]
        assert "How much leave?" in html.split('data-testid="chart-most-downvoted"')[1]
        assert "9 answers in the last 30 days." in html


async def test_the_quality_page_shows_misses_per_adapter_and_documentation_gaps(
    database: Database, tmp_path: Path
) -> None:
    prompt = [
        {"role": "system", "content": "Answer.\n\nDocuments:\n[1] Leave\nEveryone gets 26 days a year."},
        {"role": "user", "content": "How much leave do interns get?"},
    ]
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="How much leave do interns get?")
        a = store.record_answer(
            s,
            question_id=q.id or 0,
            text="26 days.",
            adapter="kb-v1",
            prompt=prompt,
            sources=[{"id": "p1", "title": "Leave > Allowance", "source": "leave.md"}],
        )
        store.submit_correction(s, answer_id=a.id or 0, author="U2", text="Interns get 13 days.")
    seed.votes(database, adapter="kb-v2", up=0, down=1)  # a 👎 that says nothing
    async with running_console(database, tmp_path) as c:
        await c.login()
        html = (await c.http.get("/console/quality")).text
        row = re.search(
            r'data-adapter="kb-v1"><td>kb-v1</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>', html
        )
        assert row is not None and row.groups() == ("1", "0", "0")
        assert 'data-adapter="kb-v2"><td>kb-v2</td><td>0</td><td>0</td><td>1</td>' in html
        assert "<dt>Leave &gt; Allowance</dt>" in html
        assert '<dd data-testid="gap-question">How much leave do interns get?</dd>' in html


async def test_the_quality_page_without_data_says_so(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        page = await c.http.get("/console/quality?days=nonsense")
        assert page.status_code == 200
        assert "No votes yet." in page.text and "<svg" not in page.text


async def test_a_sampled_answer_with_a_draft_is_reviewed_in_the_console(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        with database.writer() as s:
            q = store.record_question(s, platform="slack", user_id="U1", text="Leave?")
            a = store.record_answer(s, question_id=q.id or 0, text="20 days.", adapter="base", confidence=0.2)
            case = store.queue_answer(s, answer_id=a.id or 0, reasons=["low_confidence"], uncertainty=1.4)
            assert case is not None and case.id is not None
            store.attach_draft(s, correction_id=case.id, draft="Full-time staff get 30 days.", model="big")
        await c.login()
        page = (await c.http.get("/console/review")).text
        assert 'data-testid="case-why">Queued because: low confidence<' in page
        assert 'data-testid="case-draft">Full-time staff get 30 days.<' in page
        csrf = await c.csrf("/console/review")
        response = await c.http.post(f"/console/review/{case.id}/draft", data={"csrf": csrf})
        assert response.status_code == 303
        decided = c.deps.review.case(case.id)  # type: ignore[union-attr]
        assert decided is not None and decided.correction.status == "approved"
        assert decided.correction.text == "Full-time staff get 30 days."
