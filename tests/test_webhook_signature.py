"""Signing webhook deliveries (`shared.webhooks.signing`) and checking them
(`paysys.client.verify_webhook`), as API.md defines the signature; and the storage of
signing secrets (`shared.webhooks.secrets`): sealed, warned of when they are not, never
shown, sealed under embedded servers with a key of the folder."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet

from paysys.cli import servers
from paysys.client import WebhookSignatureError, verify_webhook
from paysys.embedded.secret_keys import folder_secret_keys
from shared.settings import Settings, get_settings
from shared.webhooks.delivery import Claimed
from shared.webhooks.secrets import (
    SecretKeysError,
    new_secret,
    seal,
    unseal,
    warn_if_unsealed,
)
from shared.webhooks.signing import signature_header

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","type":"account.created"}'
T = 1_700_000_000
# `printf '%s' '1700000000.{"id":"evt_1","type":"account.created"}' |
#  openssl dgst -sha256 -hmac whsec_test_secret`
KNOWN_V1 = "89589b799b5f094a74b1bb57eab5da8098f53a160f4906551f6eeef2fdca3521"


def hmac_hex(body: bytes, secret: str, timestamp: int) -> str:
    """The signature as API.md words it, computed here on its own."""
    return hmac.new(secret.encode("utf-8"), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def test_the_known_answer() -> None:
    assert hmac_hex(BODY, SECRET, T) == KNOWN_V1
    assert signature_header(BODY, SECRET, T) == f"t={T},v1={KNOWN_V1}"


def test_the_signature_covers_the_timestamp_body_and_secret() -> None:
    body = json.dumps({"id": "é", "data": {"amount": "1.00"}}).encode()
    secret = new_secret()
    header = signature_header(body, secret, T + 7)
    assert header == f"t={T + 7},v1={hmac_hex(body, secret, T + 7)}"
    assert header != signature_header(body, secret, T + 8)
    assert header != signature_header(body + b" ", secret, T + 7)
    assert header != signature_header(body, secret + "x", T + 7)


def test_a_good_delivery_gives_its_event() -> None:
    header = signature_header(BODY, SECRET, T)
    assert verify_webhook(BODY, header, SECRET, now=T) == json.loads(BODY)
    # A str body is its UTF-8 bytes; spaces around the header's parts do not matter.
    assert verify_webhook(BODY.decode(), f"t={T}, v1={KNOWN_V1}", SECRET, now=T + 1)["id"] == (
        "evt_1"
    )


def test_the_current_time_is_the_default() -> None:
    import time

    now = int(time.time())
    assert verify_webhook(BODY, signature_header(BODY, SECRET, now), SECRET)["id"] == "evt_1"
    with pytest.raises(WebhookSignatureError, match="timestamp"):
        verify_webhook(BODY, signature_header(BODY, SECRET, now - 3600), SECRET)


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (BODY.replace(b"account.created", b"account.deleted"), SECRET),
        (BODY + b"\n", SECRET),
        (b"", SECRET),
        (BODY, SECRET + "x"),
        (BODY, "whsec_other"),
        (BODY, ""),
    ],
    ids=[
        "tampered",
        "trailing-newline",
        "empty-body",
        "longer-secret",
        "other-secret",
        "no-secret",
    ],
)
def test_a_signature_that_does_not_match_is_refused(body: bytes, secret: str) -> None:
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook(body, signature_header(BODY, SECRET, T), secret, now=T)


def test_the_timestamp_is_signed_too() -> None:
    replayed = f"t={T + 100},v1={KNOWN_V1}"  # an old signature under a fresh timestamp
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook(BODY, replayed, SECRET, now=T + 100)


@pytest.mark.parametrize(
    ("now", "tolerance", "valid"),
    [
        (T + 300, 300, True),
        (T - 300, 300, True),
        (T + 301, 300, False),  # too old: a replay
        (T - 301, 300, False),  # too new: a clock far off, or a forged future
        (T + 86_400, 300, False),
        (T + 59, 60, True),
        (T + 61, 60, False),
        (T + 0.5, 0, False),
        (T, 0, True),
    ],
)
def test_the_timestamp_must_be_within_the_tolerance(
    now: float, tolerance: float, valid: bool
) -> None:
    header = signature_header(BODY, SECRET, T)
    if valid:
        assert verify_webhook(BODY, header, SECRET, tolerance=tolerance, now=now)
    else:
        with pytest.raises(WebhookSignatureError, match="tolerance"):
            verify_webhook(BODY, header, SECRET, tolerance=tolerance, now=now)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        KNOWN_V1,
        f"v1={KNOWN_V1}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},v0={KNOWN_V1}",  # no signature of this version
        f"t=,v1={KNOWN_V1}",
        f"t=abc,v1={KNOWN_V1}",
        f"t=-{T},v1={KNOWN_V1}",
        f"t={T}.0,v1={KNOWN_V1}",
        f"t=\uff11\uff17,v1={KNOWN_V1}",  # non-ASCII digits
        f"t={T},t={T},v1={KNOWN_V1}",
        f"t={T};v1={KNOWN_V1}",
        f"t={T},v1={KNOWN_V1},",
        f"t={T},v1=",
        f"t={T},v1={KNOWN_V1.upper()}",
        f"t={T},v1={KNOWN_V1[:-1]}",
        f"t={'9' * 13},v1={KNOWN_V1}",  # no Unix time of this world
        f"t={'9' * 5000},v1={KNOWN_V1}",  # past int()'s limit on digits
        f"t={'0' * 100}{T},v1={KNOWN_V1}",
    ],
)
def test_a_malformed_header_is_refused(header: str) -> None:
    with pytest.raises(WebhookSignatureError):
        verify_webhook(BODY, header, SECRET, now=T)


def test_any_of_several_v1_signatures_may_match() -> None:
    other = hmac_hex(BODY, "whsec_old", T)
    for header in (
        f"t={T},v1={other},v1={KNOWN_V1}",
        f"t={T},v1={KNOWN_V1},v1={other}",
        f"v1={other},t={T},v0=whatever,v1={KNOWN_V1}",
    ):
        assert verify_webhook(BODY, header, SECRET, now=T)["type"] == "account.created"
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook(BODY, f"t={T},v1={other},v1={'0' * 64}", SECRET, now=T)


def test_a_signed_body_must_be_a_json_object() -> None:
    for body in (b"not json", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(WebhookSignatureError, match="JSON"):
            verify_webhook(body, signature_header(body, SECRET, T), SECRET, now=T)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(WebhookSignatureError, ValueError)


# --- secrets ------------------------------------------------------------------------------


def test_new_secrets() -> None:
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(secret) == len("whsec_") + 43  # 32 bytes, URL-safe base64, unpadded
        assert secret.isascii() and " " not in secret


def test_without_keys_secrets_are_stored_as_they_are() -> None:
    settings = Settings(webhook_secret_keys="")
    secret = new_secret()
    assert seal(secret, settings) == "plain:" + secret
    assert unseal(seal(secret, settings), settings) == secret


def test_with_keys_secrets_are_encrypted_and_keys_rotate() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Settings(webhook_secret_keys=old)
    during = Settings(webhook_secret_keys=f" {new} , {old} ")
    after = Settings(webhook_secret_keys=new)
    secret = new_secret()

    sealed = seal(secret, before)
    assert sealed.startswith("fernet:") and secret not in sealed
    assert seal(secret, before) != sealed  # a fresh token each time
    assert unseal(sealed, before) == secret
    assert unseal(sealed, during) == secret  # every key decrypts
    resealed = seal(secret, during)  # the first key encrypts
    assert unseal(resealed, after) == secret
    with pytest.raises(SecretKeysError, match="decrypts"):
        unseal(sealed, after)
    with pytest.raises(SecretKeysError, match="not set"):
        unseal(sealed, Settings(webhook_secret_keys=""))
    # A secret stored before keys were configured stays readable.
    assert unseal("plain:" + secret, after) == secret
    with pytest.raises(SecretKeysError, match="unknown form"):
        unseal(secret, after)


def test_a_malformed_key_is_named() -> None:
    good = Fernet.generate_key().decode()
    keys = f"{good},not-a-key"
    with pytest.raises(ValueError, match="PAYSYS_WEBHOOK_SECRET_KEYS must be comma-separated"):
        Settings(webhook_secret_keys=keys)  # refused at start
    with pytest.raises(SecretKeysError, match="key 2 is not a Fernet key"):  # and if not
        seal(new_secret(), Settings.model_construct(webhook_secret_keys=keys))


def test_secrets_in_the_clear_are_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("paysys.test")
    with caplog.at_level(logging.WARNING, logger="paysys.test"):
        warn_if_unsealed(Settings(webhook_secret_keys=Fernet.generate_key().decode()), log)
        assert caplog.records == []
        warn_if_unsealed(Settings(webhook_secret_keys=""), log)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "PAYSYS_WEBHOOK_SECRET_KEYS is not set" in record.getMessage()


def test_a_claimed_delivery_never_shows_its_secret() -> None:
    secret = new_secret()
    claimed = Claimed(
        endpoint_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        attempt=1,
        url="https://example.com/hooks",
        secret=seal(secret, Settings(webhook_secret_keys="")),
        failing=False,
        event_type="account.created",
        event_created_at=datetime.now(UTC),
        data="{}",
    )
    assert secret not in repr(claimed) and secret not in str(claimed)
    assert "https://example.com/hooks" in repr(claimed)


def test_embedded_servers_seal_with_a_key_of_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = folder_secret_keys(tmp_path)
    Fernet(key)  # a key Fernet takes
    path = tmp_path / "webhook-secret-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert folder_secret_keys(tmp_path) == key  # kept: the secrets it sealed stay readable
    assert [p.name for p in tmp_path.iterdir()] == ["webhook-secret-keys"]

    folder = SimpleNamespace(root=tmp_path)
    monkeypatch.delenv("PAYSYS_WEBHOOK_SECRET_KEYS", raising=False)
    servers._seal_with_the_folders_key(folder)  # type: ignore[arg-type]
    assert get_settings().webhook_secret_keys == key
    mine = Fernet.generate_key().decode()
    monkeypatch.setenv("PAYSYS_WEBHOOK_SECRET_KEYS", mine)  # the operator's own comes first
    servers._seal_with_the_folders_key(folder)  # type: ignore[arg-type]
    assert os.environ["PAYSYS_WEBHOOK_SECRET_KEYS"] == mine
    monkeypatch.delenv("PAYSYS_WEBHOOK_SECRET_KEYS")
    get_settings.cache_clear()
