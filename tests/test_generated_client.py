"""A client generated from the running API's /openapi.json by a common generator
(openapi-python-client) is usable as it comes: the README's walkthrough runs through it.

If the generator cannot read part of the schema, or names things badly, the schema is
what needs fixing."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from devtools.processes import run_paysys
from tests.conftest import Stack

PACKAGE = "paysys_generated"
# No formatter run on the output: the test needs none, and it would print "not found".
CONFIG = "project_name_override: paysys-generated\npackage_name_override: paysys_generated\n"
CONFIG += "post_hooks: []\n"


@pytest.fixture(scope="module")
def generated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable for the module's tests."""
    where = tmp_path_factory.mktemp("generated")
    schema = where / "openapi.json"
    schema.write_bytes(httpx.get(f"{stack.base_url}/openapi.json").content)
    (where / "config.yaml").write_text(CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none"]
    command += ["--path", str(schema), "--config", str(where / "config.yaml")]
    command += ["--output-path", str(where / PACKAGE)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The generator warns about what it skipped or could not type: nothing may be.
    assert "Warning" not in output and "Unable" not in output, output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def part(name: str) -> Any:
    """A module of the generated package (`api.operations.create_transfer`, `models`)."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_every_operation_becomes_a_function_named_by_its_operation_id(
    generated: ModuleType, stack: Stack
) -> None:
    schema = httpx.get(f"{stack.base_url}/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            tag = operation["tags"][0].replace(" ", "_")
            name = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation["operationId"])
            module = part(f"api.{tag}.{name}")
            assert callable(module.sync), (method, path)


def test_the_readme_walkthrough_through_the_generated_client(
    generated: ModuleType, stack: Stack
) -> None:
    models = part("models")
    # 1. An API key (a tenant), as the README makes one: the key is the last line.
    created = run_paysys("api-keys", "create", f"generated-{uuid.uuid4().hex[:8]}", timeout=60)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    with generated.AuthenticatedClient(base_url=stack.base_url, token=key) as client:
        # 2. Two accounts, each with a USD wallet.
        create_account = part("api.accounts.create_account")
        alice = create_account.sync(client=client, body=models.AccountCreate(name="Alice"))
        bob = create_account.sync(client=client, body=models.AccountCreate(name="Bob"))
        assert isinstance(alice, models.Account) and isinstance(bob, models.Account)
        assert alice.wallet.balance == "0.00"

        # 3. Top up Alice's wallet: 202 Accepted, the operation is pending.
        top_up = part("api.wallets.create_replenishment").sync_detailed(
            alice.wallet.id,
            client=client,
            body=models.ReplenishmentCreate(amount="25.00", reference="top-up 42"),
            idempotency_key=f"topup-{uuid.uuid4()}",
        )
        assert top_up.status_code == 202
        assert top_up.headers["location"] == f"/v1/operations/{top_up.parsed.id}"
        assert top_up.parsed.status == models.OperationStatus.PENDING

        # 4. Transfer 5.00 to Bob, right away.
        transfer_key = f"rent-{uuid.uuid4()}"
        body = models.TransferCreate(
            from_wallet_id=alice.wallet.id, to_wallet_id=bob.wallet.id, amount="5.00"
        )
        create_transfer = part("api.operations.create_transfer")
        operation = create_transfer.sync(client=client, body=body, idempotency_key=transfer_key)
        assert isinstance(operation, models.Operation), operation
        assert operation.type_ == models.OperationType.TRANSFER

        # 5. Wait for it (long poll): succeeded.
        get_operation = part("api.operations.get_operation")
        deadline = time.monotonic() + 30
        while operation.status == models.OperationStatus.PENDING:
            assert time.monotonic() < deadline, "the transfer was never applied"
            operation = get_operation.sync(operation.id, client=client, wait=10)
        assert operation.status == models.OperationStatus.SUCCEEDED
        assert operation.transaction_id is not None

        # The same request again with the same key: the same operation, replayed.
        again = create_transfer.sync_detailed(
            client=client, body=body, idempotency_key=transfer_key
        )
        assert again.parsed.id == operation.id
        assert again.headers["idempotent-replayed"] == "true"

        # 6. Alice's statement, newest first, and her balance.
        postings = part("api.wallets.list_wallet_postings").sync(alice.wallet.id, client=client)
        assert [p.amount for p in postings.items] == ["-5.00", "25.00"]
        assert postings.items[0].balance_after == "20.00"
        wallet = part("api.wallets.get_wallet").sync(alice.wallet.id, client=client)
        assert (wallet.balance, wallet.available) == ("20.00", "20.00")

        # An error is a typed problem with its code.
        refused = create_transfer.sync(
            client=client,
            body=models.TransferCreate(
                from_wallet_id=alice.wallet.id, to_wallet_id=alice.wallet.id, amount="1.00"
            ),
            idempotency_key=f"self-{uuid.uuid4()}",
        )
        assert isinstance(refused, models.Problem)
        assert (refused.status, refused.code) == (422, "same_wallet")
