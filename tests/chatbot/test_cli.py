"""The `chatbot` command, run as a user would: a real process, settings from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from feedback.db import Database
from tests.support import feedback_seed as seed
from tests.support.cli import chatbot

# The tests here make their own databases: `chatbot db upgrade` or `setup` migrating one is what is tested.


def test_db_upgrade_creates_schema_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    db_file = tmp_path / "store" / "chatbot.db"
    env = {"DATABASE_URL": f"sqlite:///{db_file}"}
    result = chatbot("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Database at revision" in result.stdout
    engine = create_engine(env["DATABASE_URL"])
    assert {"answer", "vote", "adapterversion"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    current = chatbot("db", "current", env=env, cwd=tmp_path)
    assert "run `chatbot db upgrade`" not in current.stdout


def test_setup_uses_data_dir_by_default(tmp_path: Path, base_model_dir: Path) -> None:
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "BASE_MODEL": str(base_model_dir),
        "EMBEDDING_MODEL": "hashing",
    }
    result = chatbot("setup", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "chatbot.db").exists()
    assert f"Base model ready in {base_model_dir}" in result.stdout
    assert "Sample knowledge base: Read 33 files" in result.stdout
    again = chatbot("setup", env=env, cwd=tmp_path)  # idempotent: nothing re-embedded
    assert again.returncode == 0, again.stderr
    assert "0 chunks added, 0 updated" in again.stdout and "0 embedded" in again.stdout


def test_unusable_settings_give_one_clear_line(tmp_path: Path) -> None:
    env = {"ENVIRONMENT": "production", "SLACK_BOT_TOKEN": "xoxb-your-token"}
    result = chatbot("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "SLACK_BOT_TOKEN is still a placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_adapters_list_on_a_fresh_store(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path)}
    assert chatbot("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = chatbot("adapters", "list", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "base model is serving" in result.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgres(postgres_server_url: str, tmp_path: Path) -> None:
    result = chatbot("db", "upgrade", env={"DATABASE_URL": postgres_server_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    engine = create_engine(postgres_server_url)
    assert "retrainrun" in inspect(engine).get_table_names()
    engine.dispose()


def _setup_env(tmp_path: Path, base_model_dir: Path) -> dict[str, str]:
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "BASE_MODEL": str(base_model_dir),
        "EMBEDDING_MODEL": "hashing",
    }
    assert chatbot("setup", env=env, cwd=tmp_path).returncode == 0
    return env


def test_ingest_reports_an_unreadable_file_and_keeps_the_rest(tmp_path: Path, base_model_dir: Path) -> None:
    env = _setup_env(tmp_path, base_model_dir)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.md").write_text("# Parking\n\n## Lisbon\n\nGarage P2 has 40 spaces for staff.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    result = chatbot("ingest", str(docs), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Read 1 files" in result.stdout and "Skipped" in result.stdout and "broken.pdf" in result.stdout


def test_feedback_export_and_opt_out(tmp_path: Path, base_model_dir: Path) -> None:
    env = _setup_env(tmp_path, base_model_dir)
    out = tmp_path / "chat.jsonl"
    result = chatbot("feedback", "export", "--format", "openai-chat", "-o", str(out), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    # no feedback yet: the sample set's train and validation questions are the seed data
    assert 150 <= len(lines) <= 220 and f"Wrote {len(lines)} examples" in result.stdout
    assert chatbot("feedback", "opt-out", "U123", env=env, cwd=tmp_path).stdout.strip() == "U123 opted out."
    assert "already" in chatbot("feedback", "opt-out", "U123", env=env, cwd=tmp_path).stdout
    assert "opted back in" in chatbot("feedback", "opt-in", "U123", env=env, cwd=tmp_path).stdout
    bad = chatbot("feedback", "export", "--format", "csv", "-o", str(out), env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "csv" in bad.stderr


def test_the_command_imports_only_what_the_subcommand_needs(tmp_path: Path) -> None:
    """`chatbot model-server` starts vLLM without importing torch, transformers, peft or TRL first
    (seconds each on a small host, while make run starts three processes at once)."""
    probe = (
        "import sys; from chatbot.cli import main; import chatbot.cmd_model; "
        "heavy = {'torch', 'transformers', 'peft', 'trl', 'sentence_transformers'}; "
        "print(','.join(sorted(heavy & set(sys.modules))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_every_subcommand_is_listed_and_loads(tmp_path: Path) -> None:
    from chatbot.cli import LAZY_COMMANDS

    listing = chatbot("--help", env={}, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for name in [*LAZY_COMMANDS, "setup", "bot", "db", "settings"]:
        assert f"  {name} " in listing.stdout, name
    adapters = chatbot("adapters", "--help", env={}, cwd=tmp_path)
    assert adapters.returncode == 0, adapters.stderr
    # the group comes from cmd_feedback; promote, rollback and reconcile are added by cmd_retrain
    for sub in ("list", "promote", "rollback", "reconcile"):
        assert f"  {sub} " in adapters.stdout, sub
    unknown = chatbot("retrian", env={}, cwd=tmp_path)
    assert unknown.returncode == 2 and "No such command 'retrian'" in unknown.stderr


def test_feedback_forget_deletes_a_persons_questions(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "EMBEDDING_MODEL": "hashing"}
    assert chatbot("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    database = Database(f"sqlite:///{tmp_path / 'chatbot.db'}")
    seed.answer(database, user="U123")
    seed.answer(database, user="U7")
    database.dispose()
    result = chatbot("feedback", "forget", "U123", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Deleted for U123: 1 questions, 1 answers, 0 votes" in result.stdout
    asked = chatbot("feedback", "forget", "U123", env=env, cwd=tmp_path, input="n\n")
    assert asked.returncode == 1 and "Aborted" in asked.stderr
