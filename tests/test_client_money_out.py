"""The Python client's withdrawals, holds and reversals, against the real service: what a
marketplace does with them (hold at checkout, capture on delivery, refund in part), read
back through the client's own models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from paysys.client import ApiError, Operation, Paysys, Wallet
from tests.helpers import Api
from tests.test_client import LoseFirstResponse

UNKNOWN = "01a21281-e4e0-78de-ae4e-9f66091ef99e"


@pytest.fixture
def client(api: Api) -> Iterator[Paysys]:
    with Paysys(api.base_url, api.api_key) as paysys:
        yield paysys


def funds(wallet: Wallet) -> tuple[str, str, str]:
    """The wallet's balance, held and available amounts, as the API writes them."""
    amounts = wallet.balance, wallet.held, wallet.available
    assert all(isinstance(amount, Decimal) for amount in amounts), amounts
    return str(wallet.balance), str(wallet.held), str(wallet.available)


def failed_with(operation: Operation, code: str) -> bool:
    return operation.status == "failed" and (operation.error or {}).get("code") == code


def test_marketplace_hold_at_checkout_capture_on_delivery_partial_refund(
    client: Paysys,
) -> None:
    buyer = client.create_account("Buyer").wallet.id
    seller = client.create_account("Seller").wallet.id
    assert client.replenish(buyer, "100.00").wait().status == "succeeded"

    # Checkout: the order's 30.00 is reserved on the buyer, nothing moves yet.
    placed = client.hold(
        buyer, "30.00", to_wallet_id=seller, expires_in=3600, reference="order 1234"
    )
    assert (placed.type, placed.from_wallet_id, placed.to_wallet_id) == ("hold", buyer, seller)
    assert placed.amount == Decimal("30.00") and placed.reference == "order 1234"
    held = placed.wait()
    assert held.status == "succeeded" and held.transaction_id is None
    hold = client.get_hold(placed.id)
    assert (hold.id, hold.status, hold.active) == (placed.id, "held", True)
    assert (hold.from_wallet_id, hold.to_wallet_id) == (buyer, seller)
    assert (hold.amount, hold.captured_amount) == (Decimal("30.00"), None)
    assert (hold.currency, hold.reference) == ("USD", "order 1234")
    assert abs(hold.expires_at - hold.created_at - timedelta(hours=1)) < timedelta(seconds=2)
    assert funds(client.get_wallet(buyer)) == ("100.00", "30.00", "70.00")
    assert funds(client.get_wallet(seller)) == ("0.00", "0.00", "0.00")
    # What is held cannot be spent: only the available 70.00 is.
    spent = client.transfer(buyer, seller, "70.01").wait()
    assert failed_with(spent, "insufficient_funds")

    # Delivery: one item was out of stock, so 25.00 of the 30.00 is captured; the whole
    # hold is released.
    capture = client.capture(hold.id, "25.00", reference="delivered").wait()
    assert (capture.type, capture.status, capture.hold_id) == ("capture", "succeeded", hold.id)
    assert (capture.from_wallet_id, capture.to_wallet_id) == (buyer, seller)
    assert capture.amount == Decimal("25.00") and capture.transaction_id is not None
    hold = client.get_hold(hold.id)
    assert (hold.status, hold.active, hold.captured_amount) == ("captured", False, Decimal("25.00"))
    assert funds(client.get_wallet(buyer)) == ("75.00", "0.00", "75.00")
    assert funds(client.get_wallet(seller)) == ("25.00", "0.00", "25.00")
    assert failed_with(client.capture(hold.id, "5.00").wait(), "hold_not_active")

    # A refund of one returned item: the seller gives back 10.00.
    refund = client.reverse(capture.id, "10.00", reference="refund, item 2").wait()
    assert (refund.type, refund.status) == ("reversal", "succeeded")
    assert (refund.reverses_operation_id, refund.reference) == (capture.id, "refund, item 2")
    assert (refund.from_wallet_id, refund.to_wallet_id) == (seller, buyer)
    assert client.get_operation(capture.id).reversed_amount == Decimal("10.00")
    assert client.get_wallet(buyer).available == Decimal("85.00")
    assert client.get_wallet(seller).balance == Decimal("15.00")
    # No more than what was captured comes back: 15.00 is left to reverse.
    assert failed_with(client.reverse(capture.id, "15.01").wait(), "reversal_exceeds_amount")
    rest = client.reverse(capture.id).wait()
    assert (rest.status, rest.amount) == ("succeeded", Decimal("15.00"))
    assert client.get_operation(capture.id).reversed_amount == Decimal("25.00")
    assert client.get_wallet(seller).balance == Decimal("0.00")

    statement = [(p.type, p.amount) for p in client.iter_postings(buyer)]
    assert statement == [
        ("reversal", Decimal("15.00")),
        ("reversal", Decimal("10.00")),
        ("capture", Decimal("-25.00")),
        ("replenishment", Decimal("100.00")),
    ]


def test_withdraw_void_and_get_hold(client: Paysys) -> None:
    wallet = client.create_account("Payouts").wallet.id
    client.replenish(wallet, "50.00").wait()

    payout = client.withdraw(wallet, Decimal("20.00"), reference="payout 7").wait()
    assert (payout.type, payout.status, payout.wallet_id) == ("withdrawal", "succeeded", wallet)
    # The money leaves paysys: the funding side is never named.
    assert (payout.from_wallet_id, payout.to_wallet_id) == (None, None)
    assert (payout.amount, payout.currency, payout.reference) == (
        Decimal("20.00"),
        "USD",
        "payout 7",
    )
    assert funds(client.get_wallet(wallet)) == ("30.00", "0.00", "30.00")
    assert failed_with(client.withdraw(wallet, "30.01").wait(), "insufficient_funds")

    # A hold with no destination, voided: while it stands, withdrawals see only what is
    # available.
    placed = client.hold(wallet, "25.00")
    assert placed.wait().status == "succeeded"
    hold = client.get_hold(placed.id)
    assert (hold.status, hold.to_wallet_id, hold.amount) == ("held", None, Decimal("25.00"))
    # The server's default is a week.
    assert abs(hold.expires_at - hold.created_at - timedelta(days=7)) < timedelta(seconds=2)
    assert funds(client.get_wallet(wallet)) == ("30.00", "25.00", "5.00")
    assert failed_with(client.withdraw(wallet, "5.01").wait(), "insufficient_funds")

    void = client.void(hold.id).wait()
    assert (void.type, void.status, void.hold_id) == ("void", "succeeded", hold.id)
    assert void.transaction_id is None and void.amount == Decimal("25.00")
    hold = client.get_hold(hold.id)
    assert (hold.status, hold.active, hold.captured_amount) == ("voided", False, None)
    assert funds(client.get_wallet(wallet)) == ("30.00", "0.00", "30.00")
    assert failed_with(client.void(hold.id).wait(), "hold_not_active")
    assert failed_with(client.capture(hold.id).wait(), "hold_not_active")

    # A payout that bounced: reversing the withdrawal credits the wallet back.
    back = client.reverse(payout.id).wait()
    assert (back.status, back.amount, back.to_wallet_id) == ("succeeded", Decimal("20.00"), wallet)
    assert client.get_wallet(wallet).balance == Decimal("50.00")
    assert [p.type for p in client.iter_postings(wallet)] == [
        "reversal",
        "withdrawal",
        "replenishment",
    ]


def test_refusals_are_api_errors_with_their_code(client: Paysys) -> None:
    wallet = client.create_account("Refusals").wallet.id
    other = client.create_account("Other").wallet.id
    client.replenish(wallet, "10.00").wait()
    with pytest.raises(ApiError) as info:
        client.get_hold(UNKNOWN)
    assert (info.value.status, info.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as info:
        client.hold(wallet, "1.00", to_wallet_id=wallet)
    assert info.value.code == "same_wallet"
    with pytest.raises(ApiError) as info:
        client.withdraw(wallet, "1.00", currency="EUR")
    assert (info.value.status, info.value.code) == (422, "unsupported_currency")
    hold = client.hold(wallet, "4.00", to_wallet_id=other)
    hold.wait()
    with pytest.raises(ApiError) as info:
        client.capture(hold.id, "4.01")
    assert (info.value.status, info.value.code) == (422, "validation_error")
    # A hold moves no money, so there is nothing to give back.
    with pytest.raises(ApiError) as info:
        client.reverse(hold.id)
    assert (info.value.status, info.value.code) == (422, "not_reversible")
    with pytest.raises(TypeError):
        client.capture(hold.id, 4.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.hold(wallet, "1.00", expires_in=True)
    # Nothing refused above moved or reserved anything.
    assert funds(client.get_wallet(wallet)) == ("10.00", "4.00", "6.00")


def test_a_replayed_capture_is_flagged_and_captures_once(client: Paysys) -> None:
    buyer = client.create_account("Buyer").wallet.id
    seller = client.create_account("Seller").wallet.id
    client.replenish(buyer, "9.00").wait()
    hold = client.hold(buyer, "9.00", to_wallet_id=seller).wait()
    first = client.capture(hold.id, idempotency_key="capture-replay-1")
    again = client.capture(hold.id, idempotency_key="capture-replay-1")
    assert (first.replayed, again.replayed, again.id) == (False, True, first.id)
    assert first.wait().status == "succeeded"
    # Once captured, the replay still answers the capture, not a refusal.
    assert client.capture(hold.id, idempotency_key="capture-replay-1").wait().id == first.id
    assert client.get_wallet(seller).balance == Decimal("9.00")


@pytest.mark.parametrize("lost", ["/withdrawals", "/v1/holds", "/capture", "/reversals"])
def test_a_lost_response_is_retried_without_doing_it_twice(api: Api, lost: str) -> None:
    transport = LoseFirstResponse(lost)
    with Paysys(api.base_url, api.api_key, transport=transport) as client:
        buyer = client.create_account("Buyer").wallet.id
        seller = client.create_account("Seller").wallet.id
        client.replenish(buyer, "40.00").wait()
        payout = client.withdraw(buyer, "10.00").wait()
        hold = client.hold(buyer, "20.00", to_wallet_id=seller).wait()
        capture = client.capture(hold.id).wait()
        refund = client.reverse(capture.id, "5.00").wait()
        wallets = client.get_wallet(buyer), client.get_wallet(seller)
    assert transport.lost == 1  # one answer was lost, and the client retried
    assert [o.status for o in (payout, hold, capture, refund)] == ["succeeded"] * 4
    assert [w.balance for w in wallets] == [Decimal("15.00"), Decimal("15.00")]
    assert wallets[0].held == Decimal("0.00")
    assert len(api.postings(buyer)) == 4
