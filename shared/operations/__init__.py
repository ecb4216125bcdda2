"""The kinds of operation, one module each (see `shared.operations.kind`)."""

from __future__ import annotations

from shared.operations.kind import Kind
from shared.operations.replenishment import REPLENISHMENT
from shared.operations.transfer import TRANSFER

KINDS: dict[str, Kind] = {kind.name: kind for kind in (REPLENISHMENT, TRANSFER)}
