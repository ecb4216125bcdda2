"""Lookups of webhook hosts (`shared.webhooks.resolver`), with a DNS of the test's own: a
name whose lookup hangs holds at most two lookup threads, never the other names'
lookups; a lookup that does not answer in time (or cannot start) is no refusal: a
registration answers 503, a delivery is put off, not held against the receiver; and a
forked child has threads of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import ServiceUnavailable
from shared.settings import get_settings
from shared.webhooks import resolver, sender, urls
from shared.webhooks.delivery import Claimed
from shared.webhooks.resolver import LookupUnanswered, Resolver
from shared.webhooks.urls import check, resolve_allowed

SLOW = "slow.example"  # names under it hang
PUBLIC = "93.184.216.34"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """A resolver of the test's own: names under slow.example hang until the event is set
    (then fail); again.example says to try again; any other name is PUBLIC at once.
    Lookups are given up on after 0.2 s."""
    released = threading.Event()

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host.endswith(SLOW):
            released.wait(30)
        if host.endswith(SLOW) or host == "again.example":
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urls, "RESOLVE_TIMEOUT", 0.2)
    try:
        yield released
    finally:
        released.set()
        deadline = time.monotonic() + 10
        while resolver.resolver().running():  # no hung lookup left for the next test
            assert time.monotonic() < deadline
            time.sleep(0.01)


def at_once(target: Any, args: list[Any]) -> list[BaseException | None]:
    """`target(arg)` for each arg, all on threads at once; what each raised."""
    raised: list[BaseException | None] = [None] * len(args)

    def run(i: int) -> None:
        try:
            target(args[i])
        except BaseException as exc:
            raised[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return raised


def test_a_name_that_hangs_never_holds_up_the_others(dns: threading.Event) -> None:
    url = f"https://hooks.{SLOW}/x"
    raised = at_once(lambda _: resolve_allowed(url, allow_private=False), list(range(40)))
    assert all(isinstance(exc, LookupUnanswered) for exc in raised), raised
    # Its lookups given up on still run, two at most: the pool's other threads are free.
    assert resolver.resolver().running(f"hooks.{SLOW}") == 2
    assert resolver.resolver().running() == 2
    started = time.monotonic()
    assert resolve_allowed("https://hooks.example.com/x", allow_private=False)[2] == [PUBLIC]
    assert asyncio.run(check("https://hooks.example.com/x", False)).host == "hooks.example.com"
    assert time.monotonic() - started < 0.2


def test_a_lookup_that_does_not_answer_is_no_refusal(dns: threading.Event) -> None:
    for host, why in [
        (f"a.{SLOW}", "did not answer within 0.2 seconds"),
        ("again.example", "failed for now"),
    ]:
        with pytest.raises(ServiceUnavailable) as unavailable:
            asyncio.run(check(f"https://{host}/hooks", False))
        assert (unavailable.value.status, unavailable.value.code) == (503, "service_unavailable")
        assert unavailable.value.headers["Retry-After"] == "1"
        assert host in unavailable.value.detail and why in unavailable.value.detail
        with pytest.raises(LookupUnanswered, match=why):
            resolve_allowed(f"https://{host}/hooks", allow_private=False)


def test_with_every_lookup_thread_held_a_lookup_fails_at_once(dns: threading.Event) -> None:
    small = Resolver(workers=4, per_host=2)
    old = resolver.use(small)
    try:
        names = [f"n{i}.{SLOW}" for i in range(4)]
        raised = at_once(lambda name: small.resolve(name, 443, 0.2), names)
        assert all(isinstance(exc, LookupUnanswered) for exc in raised)
        assert small.running() == 4
        started = time.monotonic()
        with pytest.raises(LookupUnanswered, match="every lookup thread is busy"):
            resolve_allowed("https://hooks.example.com/x", allow_private=False)
        assert time.monotonic() - started < 0.1  # not queued behind the hung ones
    finally:
        dns.set()
        deadline = time.monotonic() + 10
        while small.running():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        resolver.use(old)


def test_a_delivery_whose_lookup_does_not_answer_is_put_off(dns: threading.Event) -> None:
    settings = get_settings().model_copy(update={"webhook_allow_private": False})
    event_id = uuid.uuid4()
    claimed = Claimed(
        endpoint_id=uuid.uuid4(),
        event_id=event_id,
        tenant_id=uuid.uuid4(),
        attempt=1,
        url=f"https://hooks.{SLOW}/x",
        secret="plain:whsec_test",
        failing=False,
        event_type="account.created",
        event_created_at=datetime.now(UTC),
        data=f'{{"id": "{event_id}"}}',
    )
    with sender.make_client(settings) as client:
        outcome = sender.attempt(claimed, settings, client)
    assert (outcome.status_code, outcome.delivered, outcome.deferred) == (None, False, "dns")
    assert outcome.error == f"the DNS lookup of hooks.{SLOW} did not answer within 0.2 seconds"


def test_a_forked_child_resolves_with_threads_of_its_own() -> None:
    """A worker's pool processes are forked: the resolver's threads of the parent are not
    theirs, and waiting on them would time every name out."""
    assert resolve_allowed("http://localhost:1/", allow_private=True)[2]  # threads started
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's exit handlers
        try:
            os.write(write, resolve_allowed("http://localhost:1/", allow_private=True)[0].encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        assert answer.read() == "localhost"
    os.waitpid(pid, 0)
