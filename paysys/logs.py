"""Logging set-up for every paysys process."""

from __future__ import annotations

import logging

from shared.settings import get_settings


def configure(process: str) -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format=f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s",
    )
