"""Where a webhook may be sent: the URL rule, checked at registration and again before
every delivery (docs/API.md, "Events and webhooks").

The rule:

* the scheme is `http` or `https` (any case; stored lower-case), else
  `webhook_url_not_allowed`;
* the URL is at most 2048 printable ASCII characters (no spaces, no backslashes: one
  spelling that every URL parser reads the same way), has a host, no user or password,
  a port in 1-65535 if one is given, else it is malformed (`validation_error` at
  registration). International names are given as punycode (`xn--`);
* unless private receivers are allowed (`PAYSYS_WEBHOOK_ALLOW_PRIVATE`), the host must be
  a public address, or a name every address of which is public, else
  `webhook_url_not_allowed`. Public means globally routable unicast: not loopback,
  private, shared (CGNAT), link-local, multicast, reserved, unspecified, documentation or
  benchmarking space, nor such an address wrapped in IPv6 (IPv4-mapped, NAT64); 6to4,
  Teredo, site-local and the other special IPv6 ranges are refused whole. A name that
  does not exist, or has no address, is refused too. One whose lookup does not answer
  within `RESOLVE_TIMEOUT` seconds is neither allowed nor refused: nothing is known of it
  (`LookupUnanswered`: registration answers 503 `service_unavailable`, to retry; a
  delivery is put off, not held against the receiver). Lookups are bounded so that one
  slow name never holds up the others (`shared.webhooks.resolver`).

A name may resolve elsewhere by the time of a delivery (DNS rebinding): so the sender
resolves it again with `resolve_allowed` and connects to one of the addresses checked,
never to whatever the name says a moment later.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import ServiceUnavailable, WebhookUrlNotAllowed
from shared.webhooks.resolver import RESOLVE_TIMEOUT, IpAddress, LookupUnanswered, resolver

__all__ = ["RESOLVE_TIMEOUT", "LookupUnanswered"]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

# The IPv4 space that is not public, whatever `is_global` says in a given Python version
# (3.11 calls 224.0.0.0/4 global, for one). RFC 6890 and the IANA special-purpose registry.
_V4_REFUSED = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services live here)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
# Public IPv6 unicast is 2000::/3; within it, these are not (or wrap an address that may
# not be). Outside it, only IPv4-mapped and NAT64 addresses are looked into.
_V6_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_REFUSED = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: an IPv4 address in disguise
        "3fff::/20",  # documentation
    )
)
_V6_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# A DNS name: labels of letters, digits, hyphens (and underscores, which some internal names
# have), not starting or ending with a hyphen.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# A last label that is a number makes the host an IPv4 address in some parsers (WHATWG:
# `http://2130706433/`, `http://0x7f.1/` are 127.0.0.1): only the dotted-quad form is taken.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_URL_CHARACTERS = re.compile(r"^[\x21-\x5b\x5d-\x7e]*$")  # printable ASCII, no \ nor space


class MalformedUrl(ValueError):
    """Not a URL paysys can deliver to (no host, a user name, a bad port...), and why."""


@dataclass(frozen=True)
class Target:
    """A URL as it is checked and stored."""

    url: str  # the URL as given, its scheme lower-case
    scheme: str
    host: str  # lower-case, IPv6 without its brackets
    port: int  # as given, else the scheme's default
    address: IpAddress | None  # the host, when it is an IP address


def parse(url: str) -> Target:
    """The URL's parts. Raises `WebhookUrlNotAllowed` for a scheme other than http(s), and
    `MalformedUrl` for anything else the module's rule refuses; resolves nothing."""
    if len(url) > MAX_URL_LENGTH:
        raise MalformedUrl(f"must be at most {MAX_URL_LENGTH} characters")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in DEFAULT_PORTS:
        raise WebhookUrlNotAllowed("A webhook URL must start with http:// or https://")
    if not _URL_CHARACTERS.match(url):
        raise MalformedUrl(
            "must be printable ASCII without spaces or backslashes: escape other characters "
            "with %XX, and give international host names as punycode (xn--...)"
        )
    if not rest.startswith("//"):
        raise MalformedUrl(f"must be {scheme}://host/...")
    normalized = scheme + ":" + rest
    try:
        parts = urlsplit(normalized)
    except ValueError:  # an unbalanced [ or ]
        raise MalformedUrl("has a host that is neither a name nor an address") from None
    if "@" in parts.netloc:
        raise MalformedUrl("must not contain a user name or password")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        raise MalformedUrl("has a port that is not a number from 1 to 65535")
    host, address = _host(parts.netloc, parts.hostname or "")
    return Target(normalized, scheme, host, port or DEFAULT_PORTS[scheme], address)


def _host(netloc: str, host: str) -> tuple[str, IpAddress | None]:
    if "%" in host:
        raise MalformedUrl("must not have an IPv6 zone (%) nor escapes in its host")
    if netloc.startswith("["):
        try:
            return host, ipaddress.IPv6Address(host)
        except ValueError:
            raise MalformedUrl(f"has [{host}], which is not an IPv6 address") from None
    if not host:
        raise MalformedUrl("must have a host")
    try:
        return host, ipaddress.IPv4Address(host)
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise MalformedUrl(f"has {host!r}, which is not a valid host name")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise MalformedUrl(f"has {host!r}: IPv4 addresses are written as four decimal numbers")
    return host, None


def is_public(address: IpAddress) -> bool:
    """Whether `address` is a globally routable unicast address (see the module's rule)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _V6_MAPPED or address in _V6_NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        unicast = address in _V6_UNICAST and not any(address in n for n in _V6_REFUSED)
        if address.scope_id or not unicast:
            return False
    elif any(address in net for net in _V4_REFUSED):
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _refuse_private(target: Target, addresses: list[IpAddress]) -> None:
    refused = [a for a in addresses if not is_public(a)]
    if not refused:
        return
    if target.address is not None:
        raise WebhookUrlNotAllowed(
            f"{target.address} is not a public address (loopback, private, link-local or "
            "otherwise reserved); webhooks are only sent to public addresses"
        )
    # Which address, the caller is not told: it would map paysys's private network.
    raise WebhookUrlNotAllowed(
        f"{target.host} resolves to an address that is not public (loopback, private, "
        "link-local or otherwise reserved); webhooks are only sent to public addresses"
    )


def _unresolved(host: str) -> WebhookUrlNotAllowed:
    return WebhookUrlNotAllowed(f"{host} does not resolve to any address")


def _refuse_localhost(target: Target) -> None:
    """RFC 6761: `localhost` and its subdomains are the loopback, whatever a resolver says."""
    if target.host.removesuffix(".") == "localhost" or target.host.endswith(
        (".localhost", ".localhost.")
    ):
        raise WebhookUrlNotAllowed(
            f"{target.host} is the loopback; webhooks are only sent to public addresses"
        )


async def check(url: str, allow_private: bool) -> Target:
    """The check at registration: the URL's parts, once its rule holds.

    Raises `MalformedUrl` (the route answers 422 `validation_error`) or
    `WebhookUrlNotAllowed` (422 `webhook_url_not_allowed`): a scheme other than http(s);
    unless `allow_private`, a host that is not a public address, or a name that does not
    resolve or resolves to any address that is not public. `ServiceUnavailable` (503,
    with Retry-After) when the name's lookup did not answer in time. With
    `allow_private`, names are not resolved at all (a development setup's receivers may
    not be up yet). Resolution runs on the resolver's threads, never on the event loop.
    """
    target = parse(url)
    if allow_private:
        return target
    if target.address is not None:
        _refuse_private(target, [target.address])
        return target
    _refuse_localhost(target)
    try:
        addresses = await resolver().resolve_async(target.host, target.port, RESOLVE_TIMEOUT)
    except LookupUnanswered as exc:
        unavailable = ServiceUnavailable(f"{exc}; try again shortly")
        unavailable.headers["Retry-After"] = str(max(1, round(RESOLVE_TIMEOUT)))
        raise unavailable from None
    if not addresses:
        raise _unresolved(target.host)
    _refuse_private(target, addresses)
    return target


def resolve_allowed(url: str, allow_private: bool) -> tuple[str, int, list[str]]:
    """The check before each delivery: `(host, port, addresses)` to connect to.

    `host` is the URL's host (lower-case, IPv6 without brackets: what the Host header and
    TLS's server name are made of), `port` the URL's or the scheme's default, `addresses`
    every address the host resolves to (the address itself for an IP host), as text,
    in the resolver's order, at least one. The caller connects to one of these, not to
    the name, so that a name re-pointed after the check (DNS rebinding) reaches nothing
    unchecked.

    Raises `WebhookUrlNotAllowed`, its detail saying why (fit to record as the attempt's
    error), when the URL breaks the module's rule, when the name does not resolve, or,
    unless `allow_private`, when any of its addresses is not public; `LookupUnanswered`
    when its lookup did not answer in time (nothing is known: put the delivery off).
    Blocks for up to `RESOLVE_TIMEOUT` seconds: call it from a thread, not from an event
    loop.
    """
    try:
        target = parse(url)
    except MalformedUrl as exc:
        raise WebhookUrlNotAllowed(f"The webhook URL {exc}") from None
    if target.address is not None:
        addresses = [target.address]
    else:
        if not allow_private:
            _refuse_localhost(target)
        addresses = resolver().resolve(target.host, target.port, RESOLVE_TIMEOUT)
        if not addresses:
            raise _unresolved(target.host)
    if not allow_private:
        _refuse_private(target, addresses)
    return target.host, target.port, [str(a) for a in addresses]
