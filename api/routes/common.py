"""Pieces the resource routes share."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from api.responses import JSON
from shared.errors import UnsupportedCurrency
from shared.intake.service import Accepted
from shared.money import SUPPORTED_CURRENCIES


def check_currency(currency: str) -> None:
    if currency not in SUPPORTED_CURRENCIES:
        raise UnsupportedCurrency('Only "USD" is supported')


def accepted_response(accepted: Accepted, document: dict[str, Any], location: str) -> Response:
    headers = {"Location": location}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSON(document, status_code=accepted.status_code, headers=headers)
