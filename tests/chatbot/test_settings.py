"""Settings: read from the environment and .env, placeholders refused in production, all documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatbot.settings import Settings
from tests.support.paths import REPO

README = REPO / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README.read_text()))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert missing == [], f"settings missing from README.md: {missing}"


def test_defaults_use_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'chatbot.db'}"
    assert settings.port == 3000 and settings.admin_users == []


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ADMIN_USERS=U1, U2 ,teams:29:abc\nPORT=3100\nDATABASE_URL=sqlite:///x.db\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORT", "3200")  # the environment wins over .env
    settings = Settings()
    assert settings.admin_users == ["U1", "U2", "teams:29:abc"]
    assert settings.port == 3200
    assert settings.sqlalchemy_url == "sqlite:///x.db"


@pytest.mark.parametrize("value", ["changeme", "xoxb-your-token", "<signing secret>", "CHANGETHIS"])
def test_placeholders_are_refused_in_production(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", value)
    with pytest.raises(ValidationError, match="SLACK_SIGNING_SECRET is still a placeholder"):
        Settings()
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert Settings().slack_signing_secret.get_secret_value() == value


def test_real_secrets_pass_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1234-5678-abcdefgh")
    assert Settings().slack_bot_token.get_secret_value().startswith("xoxb-1234")


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_a_negative_gate_loss_margin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_LOSS_MARGIN", "-0.1")
    with pytest.raises(ValidationError, match="gate_loss_margin"):
        Settings()
    monkeypatch.setenv("GATE_LOSS_MARGIN", "0.35")
    assert Settings().gate_loss_margin == 0.35


def test_training_examples_are_as_long_as_the_dataset_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset drops examples over MAX_MODEL_LEN; the trainer must not cut the answers off the rest."""
    from chatbot.retraining import train_config

    monkeypatch.setenv("MAX_MODEL_LEN", "3072")
    assert train_config(Settings()).max_length == 3072


def test_a_retrain_trains_as_its_base_model_wants_unless_the_settings_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatbot.retraining import train_config
    from chatbot.wiring import grounding_threshold
    from model_server import catalog

    monkeypatch.setenv("BASE_MODEL", "qwen2.5-coder-1.5b-instruct")
    big = catalog.lookup("qwen2.5-coder-1.5b-instruct")
    cfg = train_config(Settings())
    assert (cfg.epochs, cfg.learning_rate, cfg.time_budget_s) == (
        big.retrain.epochs,
        big.retrain.learning_rate,
        big.retrain.train_minutes * 60,
    )
    assert cfg.gradient_checkpointing and grounding_threshold(Settings()) == big.grounding_threshold > 0
    monkeypatch.setenv("RETRAIN_EPOCHS", "1.5")
    monkeypatch.setenv("RETRAIN_TRAIN_MINUTES", "0")
    monkeypatch.setenv("RETRAIN_GRADIENT_CHECKPOINTING", "false")
    monkeypatch.setenv("GROUNDING_THRESHOLD", "0")
    cfg = train_config(Settings())
    assert (cfg.epochs, cfg.time_budget_s, cfg.gradient_checkpointing) == (1.5, 0.0, False)
    assert grounding_threshold(Settings()) == 0.0
    # a model directory outside the catalog gets the generic defaults
    monkeypatch.delenv("RETRAIN_EPOCHS")
    monkeypatch.setenv("BASE_MODEL", "/models/my-own-model")
    assert train_config(Settings()).epochs == catalog.RetrainDefaults().epochs


def test_console_users_are_name_token_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_USERS", " alice:tok-alice-0123456789 , bob.smith:tok:with:colons-0123 ,")
    assert Settings().console_logins() == {
        "alice": "tok-alice-0123456789",
        "bob.smith": "tok:with:colons-0123",
    }
    monkeypatch.setenv("ADMIN_TOKEN", "tok-alice-0123456789")
    with pytest.raises(ValidationError, match="same token"):
        Settings()
    monkeypatch.setenv("ADMIN_TOKEN", "another-admin-token-000")
    monkeypatch.setenv("CONSOLE_USERS", "admin:tok-admin-0123456789")
    with pytest.raises(ValidationError, match="ADMIN_TOKEN's identity"):
        Settings()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("alice", "NAME:TOKEN pairs"),
        ("al ice:tok-alice-0123456789", "NAME:TOKEN pairs"),
        ("alice:short", "shorter than 16"),
        ("alice:tok-alice-0123456789,alice:tok-alice-9876543210", "names alice twice"),
    ],
)
def test_unusable_console_users_are_refused(monkeypatch: pytest.MonkeyPatch, value: str, error: str) -> None:
    monkeypatch.setenv("CONSOLE_USERS", value)
    with pytest.raises(ValidationError, match=error):
        Settings()


def test_placeholder_console_tokens_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("CONSOLE_USERS", "alice:your-token-goes-here-ok")
    with pytest.raises(ValidationError, match="alice's token is still a placeholder"):
        Settings()
