"""Webhook signing secrets: made here, and stored sealed.

A secret is `whsec_` and 32 random bytes (URL-safe base64). It is shown to the tenant once,
when the endpoint is registered; paysys keeps it to sign every delivery, so it is stored
in a form paysys can read back (a hash would not do):

* with `PAYSYS_WEBHOOK_SECRET_KEYS` set (comma-separated Fernet keys), encrypted:
  `fernet:<token>`. The first key encrypts, every key decrypts, so keys are rotated by
  putting a new one first and dropping an old one once nothing is sealed with it. A copy
  of the database alone then cannot forge signatures: that takes the keys too.
* with none set, as it is: `plain:<secret>`. Whoever reads the `webhook_endpoint` table
  can then sign deliveries as paysys. Fit for development, not for production.

A secret stored `plain:` stays readable after keys are configured; a `fernet:` one needs a
key that decrypts it (`SecretKeysError` otherwise).
"""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_FERNET = "fernet:"
_PLAIN = "plain:"


class SecretKeysError(RuntimeError):
    """PAYSYS_WEBHOOK_SECRET_KEYS is malformed, missing, or has no key for a secret."""


def warn_if_unsealed(settings: Settings, log: logging.Logger) -> None:
    """At the start of a process that stores or reads secrets (`paysys api`, `paysys
    webhooks`): say loudly if they are kept in the clear."""
    if _fernet(settings.webhook_secret_keys) is None:
        log.warning(
            "PAYSYS_WEBHOOK_SECRET_KEYS is not set: webhook signing secrets are stored "
            "unencrypted, and whoever reads the database can sign deliveries as paysys. "
            "Set it to a Fernet key (python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'), the same for every paysys process"
        )


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet | None:
    parts = [key.strip() for key in keys.split(",") if key.strip()]
    if not parts:
        return None
    fernets = []
    for position, key in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise SecretKeysError(
                f"PAYSYS_WEBHOOK_SECRET_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes, as Fernet.generate_key() makes)"
            ) from None
    return MultiFernet(fernets)


def seal(secret: str, settings: Settings) -> str:
    """The secret as it is stored: encrypted with the first key, or as it is (see above)."""
    fernet = _fernet(settings.webhook_secret_keys)
    if fernet is None:
        return _PLAIN + secret
    return _FERNET + fernet.encrypt(secret.encode()).decode("ascii")


def unseal(stored: str, settings: Settings) -> str:
    """The secret that `seal` stored."""
    if stored.startswith(_PLAIN):
        return stored.removeprefix(_PLAIN)
    if not stored.startswith(_FERNET):
        raise SecretKeysError("a webhook secret stored in an unknown form")
    fernet = _fernet(settings.webhook_secret_keys)
    if fernet is None:
        raise SecretKeysError(
            "a webhook secret is encrypted, but PAYSYS_WEBHOOK_SECRET_KEYS is not set"
        )
    try:
        return fernet.decrypt(stored.removeprefix(_FERNET).encode("ascii")).decode()
    except InvalidToken:
        raise SecretKeysError(
            "no key of PAYSYS_WEBHOOK_SECRET_KEYS decrypts a webhook secret "
            "(was the key that sealed it removed?)"
        ) from None
