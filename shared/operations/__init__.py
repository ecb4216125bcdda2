"""The kinds of operation, one module each (see `shared.operations.kind`)."""

from __future__ import annotations

from shared.operations.capture import CAPTURE
from shared.operations.expiry import EXPIRY
from shared.operations.hold import HOLD
from shared.operations.kind import Kind
from shared.operations.replenishment import REPLENISHMENT
from shared.operations.reversal import REVERSAL
from shared.operations.transfer import TRANSFER
from shared.operations.void import VOID
from shared.operations.withdrawal import WITHDRAWAL

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (REPLENISHMENT, TRANSFER, WITHDRAWAL, HOLD, CAPTURE, VOID, EXPIRY, REVERSAL)
}
