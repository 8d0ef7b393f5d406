"""The console against input an attacker would send, over real HTTP to the bot's real app, on SQLite
and PostgreSQL: questions holding U+0000, ids no row can have, bodies that are not forms, and
reviewers who try to count twice. Each gets a 4xx or the right answer, never a 500."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feedback import queries
from feedback.db import Database
from tests.support.console import ADMIN, TOKEN, Console, running_console

ALICE, BOB = "alice-personal-token-0001", "bob-personal-token-00002"
OUT_OF_RANGE = [2147483648, 2**63, 99999999999999999999, -1, 0]
TRUNCATED = b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n\r\n' + TOKEN.encode()
MULTIPART = {"Content-Type": "multipart/form-data; boundary=xyz"}


async def _correction(c: Console) -> int:
    answer = await c.answer("Leave?", user="carol")
    response = await c.http.post(
        "/console/api/correction",
        json={"answer_id": answer["answer_id"], "text": "Full-time staff get 30 days.", "user": "carol"},
    )
    return int(response.json()["correction_id"])


async def test_a_question_holding_nul_is_stored_and_answered(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        answer = await c.answer("How many days\x00 of leave do I get?")
        assert answer["text"]
        with database.reader() as s:
            question = queries.get_question(s, answer["question_id"])
        assert question is not None and question.text == "How many days\ufffd of leave do I get?"
        vote = await c.http.post(
            "/console/api/vote", json={"answer_id": answer["answer_id"], "value": -1, "user": "ada"}
        )
        assert vote.status_code == 200
        fixed = await c.http.post(
            "/console/api/correction", json={"answer_id": answer["answer_id"], "text": "Thirty\x00 days."}
        )
        assert fixed.status_code == 200 and fixed.json()["status"] == "pending"


async def test_answer_ids_no_answer_can_have_are_not_found(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.answer()
        for bad in OUT_OF_RANGE:
            for value in (1, 0):
                vote = await c.http.post("/console/api/vote", json={"answer_id": bad, "value": value})
                assert vote.status_code == 404, (bad, value, vote.text)
            fix = await c.http.post("/console/api/correction", json={"answer_id": bad, "text": "No."})
            assert fix.status_code == 404, (bad, fix.text)
            assert "no such answer" in fix.json()["error"]
        with database.reader() as s:
            assert queries.corrections(s) == []


async def test_correction_ids_no_correction_can_have_are_not_found(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        csrf = await c.csrf()  # the review queue is empty: no form there
        for bad in ("2147483648", str(2**63), "99999999999999999999", "9" * 5000, "00", "١٢"):
            for decision in ("approve", "edit", "reject"):
                response = await c.http.post(
                    f"/console/review/{bad}/{decision}", data={"csrf": csrf, "text": "x", "reason": "y"}
                )
                assert response.status_code == 404, (bad[:30], decision, response.status_code)
        negative = await c.http.post("/console/review/-1/approve", data={"csrf": csrf})
        assert negative.status_code == 404


async def test_bodies_that_are_not_forms_get_400(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        truncated = await c.http.post("/console/login", content=TRUNCATED, headers=MULTIPART)
        assert truncated.status_code == 400 and "could not be read" in truncated.text
        assert "console_admin" not in c.http.cookies
        charset = await c.http.post(
            "/console/login",
            content=b"token=x",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"},
        )
        assert charset.status_code == 400
        await c.login()
        correction_id = await _correction(c)
        for body, headers in (
            (TRUNCATED, MULTIPART),
            (b"csrf=\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}),
        ):
            response = await c.http.post(
                f"/console/review/{correction_id}/approve", content=body, headers=headers
            )
            assert response.status_code == 400, response.text
        case = c.deps.review.case(correction_id)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "pending"


async def test_a_forged_csrf_token_or_origin_of_any_shape_is_refused(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        await c.login()
        csrf = await c.csrf()
        for data, headers in (
            ({"csrf": "é"}, {}),  # compare_digest refuses non-ASCII str: it once raised
            ({"csrf": csrf}, {"Origin": "http://[::1"}),  # not a URL
        ):
            response = await c.http.post("/console/model/retrain", data=data, headers=headers)
            assert response.status_code == 403, response.text
        c.http.cookies.clear()
        forged = {"Cookie": "console_admin=é.é".encode()}
        assert (await c.http.get("/console/model", headers=forged, follow_redirects=False)).status_code == 303
        with database.reader() as s:
            assert queries.recent_runs(s) == []


async def _approve(c: Console, token: str, correction_id: int, *, name: str | None = None) -> int:
    c.http.cookies.clear()
    login = await c.login(token, **({"name": name} if name else {}))
    assert login.status_code == 303
    csrf = await c.csrf()  # the review page shows no form to who approved already
    response = await c.http.post(f"/console/review/{correction_id}/approve", data={"csrf": csrf})
    return response.status_code


async def test_k_of_n_review_counts_distinct_people_not_typed_names(
    database: Database, tmp_path: Path
) -> None:
    users = {"alice": ALICE, "bob": BOB}
    async with running_console(database, tmp_path, console_users=users, approvals_required=2) as c:
        first = await _correction(c)
        assert await _approve(c, ALICE, first, name="alice") == 303
        # the same person again, typing a Slack admin's id: still alice, refused
        assert await _approve(c, ALICE, first, name="UADMIN") == 409
        page = (await c.http.get("/console/review")).text
        assert 'data-testid="admin-name">console:alice<' in page
        case = c.deps.review.case(first)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "pending"
        assert case.approvals == ["console:alice"]
        assert await _approve(c, BOB, first) == 303
        case = c.deps.review.case(first)  # type: ignore[union-attr]
        assert case is not None and case.correction.status == "approved"
        assert case.approvals == ["console:alice", "console:bob"]

        # ADMIN_TOKEN is one identity: it cannot approve twice either
        second = await _correction(c)
        assert await _approve(c, TOKEN, second, name="alice") == 303
        assert await _approve(c, TOKEN, second, name="someone-else") == 409
        case = c.deps.review.case(second)  # type: ignore[union-attr]
        assert case is not None and case.approvals == [ADMIN]
        assert case.correction.status == "pending"


async def test_a_session_is_signed_with_its_owners_token(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path, admin_token="", console_users={"alice": ALICE}) as c:
        assert (await c.login(ALICE)).status_code == 303
        alices = c.http.cookies["console_admin"]
        assert (await c.login(BOB)).status_code == 401
    # bob's token replaced alice's: alice's session ends, and her cookie is no one else's
    async with running_console(database, tmp_path, admin_token="", console_users={"bob": ALICE + "x"}) as c:
        c.http.cookies.set("console_admin", alices)
        assert (await c.http.get("/console/model", follow_redirects=False)).status_code == 303


@pytest.mark.parametrize("token", [ALICE, TOKEN])
async def test_every_console_identity_is_namespaced(database: Database, tmp_path: Path, token: str) -> None:
    async with running_console(database, tmp_path, console_users={"alice": ALICE}) as c:
        await c.login(token, name="UADMIN")
        csrf = await c.csrf()
        await c.http.post("/console/model/retrain", data={"csrf": csrf})
        with database.reader() as s:
            [run] = queries.recent_runs(s)
        assert run.requested_by is not None and re.fullmatch(r"console:(alice|admin)", run.requested_by)
