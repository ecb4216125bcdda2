from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import Settings

EXAMPLE = Path(__file__).parent.parent / ".env.example"


def variable(name: str) -> str:
    return name.upper() if name in ("database_url", "redis_url") else f"PAYSYS_{name.upper()}"


def test_env_example_lists_every_setting() -> None:
    text = EXAMPLE.read_text()
    assert [n for n in Settings.model_fields if variable(n) not in text] == []


def test_env_example_copied_to_dot_env_gives_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)
    loaded = Settings()
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert loaded.model_dump() == defaults


def test_bad_rate_limit_notation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSYS_RATE_LIMIT", "fast")
    with pytest.raises(ValueError, match="limits notation"):
        Settings()


def test_malformed_webhook_secret_keys_are_refused_at_start() -> None:
    from cryptography.fernet import Fernet
    from pydantic import ValidationError

    good = Fernet.generate_key().decode()
    assert Settings(webhook_secret_keys=f"{good}, {good}").webhook_secret_keys
    with pytest.raises(ValidationError, match="Fernet keys"):
        Settings(webhook_secret_keys=f"{good},not-a-key")
