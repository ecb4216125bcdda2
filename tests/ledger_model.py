"""The ledger in plain arithmetic: what the ledger service must agree with."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

Wallet = TypeVar("Wallet", bound=Hashable)


def model_outcomes(
    plan: Sequence[tuple[str, Wallet, Wallet | None, int]], balances: dict[Wallet, int]
) -> list[str]:
    """Apply the plan's replenishments and transfers, in order, to `balances` (in place);
    return each one's outcome. A transfer its source cannot cover fails and moves nothing."""
    outcomes = []
    for kind, first, second, amount in plan:
        if kind == "replenishment":
            balances[first] += amount
            outcomes.append("succeeded")
        elif balances[first] >= amount:
            assert second is not None
            balances[first] -= amount
            balances[second] += amount
            outcomes.append("succeeded")
        else:
            outcomes.append("failed")
    return outcomes
