"""One delivery attempt over HTTP: where it may go, what it sends, what counts as delivered.

The rules it keeps:

* The address is checked when the request is made, not only at registration: the host is
  resolved (a lookup that does not answer in time puts the delivery off, see
  `shared.webhooks.resolver`), every address it resolves to must be public (unless
  `webhook_allow_private`), and the request connects to an address that was checked
  (the IP in the URL, the real name in `Host` and, for https, in SNI, so the certificate
  is verified against the name): the first, or, if it refuses the connection, the next.
  A name that resolves elsewhere between the check and the connection (DNS rebinding)
  changes nothing.
* The body is the event exactly as the feed serves it (`event_body`), signed with the
  endpoint's secret (`Paysys-Signature: t=...,v1=...`).
* Delivered means a 2xx status within `webhook_timeout_seconds` for the whole exchange
  (connection, request, status line): past it the connection is cut. Redirects are not
  followed (a 3xx is a failure). At most `webhook_max_response_bytes` of the answer are
  read, the rest never leaves the socket.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from shared.errors import PaysysError
from shared.resources.events import event_body
from shared.settings import Settings
from shared.webhooks.delivery import Claimed, Outcome
from shared.webhooks.secrets import unseal
from shared.webhooks.signing import signature_header
from shared.webhooks.urls import LookupUnanswered, resolve_allowed


def _user_agent() -> str:
    try:
        return f"paysys-webhooks/{version('paysys')}"
    except PackageNotFoundError:  # a checkout that was never installed
        return "paysys-webhooks"


USER_AGENT = _user_agent()


class _Deadline:
    """Cuts the connection of one request when its time is up: httpx's timeouts bound
    each read, not the whole exchange (a receiver trickling bytes would never end)."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpx's `trace` extension: learn the socket as soon as it is connected."""
        if name == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                if sock is not None:
                    self._sockets.append(sock)
                    if self.expired:
                        self._cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._cut(sock)

    @staticmethod
    def _cut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read in the sending thread
        except OSError:
            pass

    @contextmanager
    def running(self) -> Iterator[_Deadline]:
        self._timer.start()
        try:
            yield self
        finally:
            self._timer.cancel()


def make_client(settings: Settings) -> httpx.Client:
    """One client for every sending thread of a process. No connection is kept: each
    delivery connects to the address it has just checked (and a connection verified for
    one name is never reused for another behind the same address)."""
    timeout = settings.webhook_timeout_seconds
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: it would bypass the check
        limits=httpx.Limits(max_keepalive_connections=0),
        verify=ssl.create_default_context(),
    )


def _pinned(url: str, address: str) -> tuple[httpx.URL, str, str]:
    """The URL with the checked address as its host; the Host header; the name for SNI."""
    parsed = httpx.URL(url)
    name = parsed.raw_host.decode("ascii")
    return parsed.copy_with(host=address), parsed.netloc.decode("ascii"), name


def attempt(claimed: Claimed, settings: Settings, client: httpx.Client) -> Outcome:
    """Make one attempt; never raises for anything the receiver or the network does."""
    try:
        _, _, addresses = resolve_allowed(claimed.url, settings.webhook_allow_private)
    except PaysysError as exc:
        return Outcome(None, f"url not allowed: {exc.detail}")
    except LookupUnanswered as exc:  # nothing known of the name: not the receiver's failure
        return Outcome(None, str(exc), deferred="dns")
    except (OSError, UnicodeError) as exc:
        return Outcome(None, f"cannot resolve the host: {exc}")
    if not addresses:
        return Outcome(None, "cannot resolve the host: no address")
    body = event_body(claimed.event_id, claimed.event_type, claimed.event_created_at, claimed.data)
    signature = signature_header(body, unseal(claimed.secret, settings), int(time.time()))
    headers = {
        "Host": httpx.URL(claimed.url).netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Paysys-Event-Id": str(claimed.event_id),
        "Paysys-Signature": signature,
    }
    deadline = _Deadline(settings.webhook_timeout_seconds)
    try:
        with deadline.running():
            status = _post(client, claimed.url, addresses, body, headers, deadline, settings)
    except httpx.TimeoutException:
        return Outcome(None, "timeout")
    except httpx.HTTPError as exc:
        if deadline.expired:
            return Outcome(None, "timeout")
        return Outcome(None, describe(exc))
    if 200 <= status <= 299:
        return Outcome(status, None)
    return Outcome(status, f"status {status}")


def _post(
    client: httpx.Client,
    url: str,
    addresses: list[str],
    body: bytes,
    headers: dict[str, str],
    deadline: _Deadline,
    settings: Settings,
) -> int:
    """The status of the POST to the first checked address that takes the connection: one
    that refuses it (or cannot be reached: nothing was sent) gives way to the next, all
    within the one deadline."""
    for n, checked in enumerate(addresses):
        target, _, name = _pinned(url, str(ipaddress.ip_address(checked)))
        extensions: dict[str, Any] = {"trace": deadline.trace}
        if target.scheme == "https":
            extensions["sni_hostname"] = name
        try:
            with client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response:
                _read_some(response, settings.webhook_max_response_bytes, deadline)
                return response.status_code
        except httpx.ConnectError:
            if n + 1 == len(addresses) or deadline.expired:
                raise
    raise AssertionError("no address to send to")


def _read_some(response: httpx.Response, limit: int, deadline: _Deadline) -> None:
    """Read at most `limit` bytes of the answer, while there is time: its status is what
    counts, and the rest stays unread (the connection is closed, not drained)."""
    seen = 0
    if limit <= 0:
        return
    try:
        for chunk in response.iter_raw(min(limit, 16 * 1024)):
            seen += len(chunk)
            if seen >= limit or deadline.expired:
                return
    except httpx.HTTPError:
        # The status has arrived: what follows it does not change the outcome.
        return


def describe(exc: Exception) -> str:
    """A short cause for the delivery log."""
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 8:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"tls certificate not valid: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"tls error: {cause.reason or cause}"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}" if str(exc) else "connection failed"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
