"""`chatbot retrain` and `chatbot adapters promote|rollback`, run as a user would: a real process,
settings from the environment. Switches are recorded with who made them; refusals are one clear
line and change nothing."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from feedback import queries, store
from feedback.db import Database
from tests.support.cli import chatbot
from tests.support.lora import make_lora
from tests.support.model_servers import free_port, running_server


def _env(tmp_path: Path, base_model_dir: Path, server: str, database: Database) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database.url,
        "MODEL_SERVER_URL": server,
        "BASE_MODEL": str(base_model_dir),
        "EMBEDDING_MODEL": "hashing",
    }


def test_refusals_are_one_line_and_change_nothing(
    database: Database, tmp_path: Path, base_model_dir: Path
) -> None:
    env = _env(tmp_path, base_model_dir, f"http://127.0.0.1:{free_port()}", database)  # nothing listens there
    unknown = chatbot("adapters", "promote", "kb-v9", "--as", "alice", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "There is no adapter called 'kb-v9'" in unknown.stderr
    nothing = chatbot("adapters", "rollback", env=env, cwd=tmp_path)
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr

    path = make_lora(base_model_dir, tmp_path / "kb-v1")
    with database.writer() as session:
        store.register_adapter(session, name="kb-v1", path=str(path), base_model="smollm2")
    down = chatbot("adapters", "promote", "kb-v1", env=env, cwd=tmp_path)
    assert down.returncode == 1 and "is not answering" in down.stderr and "Traceback" not in down.stderr
    with database.reader() as session:
        assert queries.active_adapter(session) is None and not queries.adapter_history(session)


def test_a_retrain_with_the_model_server_down_is_recorded_failed(
    database: Database, tmp_path: Path, base_model_dir: Path
) -> None:
    env = _env(tmp_path, base_model_dir, f"http://127.0.0.1:{free_port()}", database)
    result = chatbot("retrain", "--as", "bob", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Run #1 failed" in result.stdout and "is not answering" in result.stdout
    with database.reader() as session:
        (run,) = queries.recent_runs(session)
    assert run.status == "failed" and run.requested_by == "bob" and run.trigger == "cli"
    assert run.error and "is not answering" in run.error


@pytest.mark.slow
def test_promote_and_rollback_are_recorded_with_who_did_it(
    database: Database, tmp_path: Path, base_model_dir: Path
) -> None:
    with running_server("transformers", base_model_dir, tmp_path / "engine.log") as server:
        env = _env(tmp_path, base_model_dir, server, database)
        for n in (1, 2):
            path = make_lora(base_model_dir, tmp_path / f"kb-v{n}", seed=n)
            with database.writer() as session:
                store.register_adapter(session, name=f"kb-v{n}", path=str(path), base_model="smollm2")
        for name in ("kb-v1", "kb-v2"):
            done = chatbot("adapters", "promote", name, "--as", "alice", env=env, cwd=tmp_path)
            assert done.returncode == 0 and f"{name} is now active." in done.stdout, done.stderr
        back = chatbot("adapters", "rollback", env=env, cwd=tmp_path)
        assert back.returncode == 0 and "kb-v1 is serving" in back.stdout, back.stderr
        listed = chatbot("adapters", "list", env=env, cwd=tmp_path)
        assert "* kb-v1" in listed.stdout
    with database.reader() as session:
        history = queries.adapter_history(session)
    assert [(c.action, c.to_name, c.actor) for c in history] == [
        ("rollback", "kb-v1", getpass.getuser()),
        ("promote", "kb-v2", "alice"),
        ("promote", "kb-v1", "alice"),
    ]
