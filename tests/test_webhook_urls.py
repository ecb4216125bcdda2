"""The webhook URL rule (`shared.webhooks.urls`), unit by unit: which URLs are malformed,
which schemes and addresses are refused, what names resolve to, and what
`PAYSYS_WEBHOOK_ALLOW_PRIVATE` lets through. (Over HTTP: test_webhook_endpoints.py; the
bounds on lookups: test_webhook_resolver.py.)"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any

import pytest

from shared.errors import WebhookUrlNotAllowed
from shared.webhooks.urls import MalformedUrl, Target, check, is_public, parse, resolve_allowed

NOT_PUBLIC = [
    # IPv4: loopback, private, shared, link-local, "this network", multicast, reserved,
    # broadcast, documentation, benchmarking, IETF assignments, the 6to4 relay.
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.255",
    "169.254.169.254",
    "0.0.0.0",  # noqa: S104 (an address refused, not one bound to)
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "198.19.255.255",
    "192.0.0.9",
    "192.88.99.1",
    # IPv6: loopback, unspecified, link-local, unique local, site-local, multicast,
    # documentation, discard, IPv4-compatible.
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "3fff::1",
    "100::1",
    "::7f00:1",
    # IPv4 in IPv6 clothing: mapped and NAT64 around private addresses; 6to4 and Teredo
    # refused whole.
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:7f00:1::1",
    "2002:5db8:d822::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


def url_of(address: str, port: int | None = None) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}{'' if port is None else f':{port}'}/hooks"


def run_check(url: str, allow_private: bool = False) -> Target:
    return asyncio.run(check(url, allow_private))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(WebhookUrlNotAllowed, match="not a public address"):
        run_check(url_of(address))
    with pytest.raises(WebhookUrlNotAllowed, match="not a public address"):
        resolve_allowed(url_of(address), allow_private=False)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_allow_private_lets_them_through(address: str) -> None:
    assert run_check(url_of(address, 8080), allow_private=True).port == 8080
    host, port, addresses = resolve_allowed(url_of(address, 8080), allow_private=True)
    assert (host, port) == (address, 8080)
    assert [ipaddress.ip_address(a) for a in addresses] == [ipaddress.ip_address(address)]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    target = run_check(url_of(address))
    assert target.address == ipaddress.ip_address(address)
    host, port, addresses = resolve_allowed(url_of(address), allow_private=False)
    assert (host, port) == (address, 443)
    assert [ipaddress.ip_address(a) for a in addresses] == [ipaddress.ip_address(address)]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/x",
        "file:///etc/passwd",
        "gopher://93.184.216.34:70/_x",
        "javascript:alert(1)",
        "mailto:ops@example.com",
        "ws://93.184.216.34/x",
        "93.184.216.34/hooks",
        "//93.184.216.34/hooks",
        "",
    ],
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed, match="http:// or https://"):
        run_check(url, allow_private=True)
    with pytest.raises(WebhookUrlNotAllowed, match="http:// or https://"):
        resolve_allowed(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https:93.184.216.34/x", "https://host"),
        ("http:/93.184.216.34/x", "http://host"),
        ("https:///hooks", "must have a host"),
        ("https://:443/hooks", "must have a host"),
        ("https://user:pass@93.184.216.34/x", "user name or password"),
        ("https://user@93.184.216.34/x", "user name or password"),
        ("https://93.184.216.34:0/x", "port"),
        ("https://93.184.216.34:65536/x", "port"),
        ("https://93.184.216.34:https/x", "port"),
        ("https://93.184.216.34:+443/x", "port"),
        ("https://93.184.216.34 /x", "printable ASCII"),
        ("https://example.com/a b", "printable ASCII"),
        ("https://example.com\\@127.0.0.1/", "printable ASCII"),
        ("https://exa\tmple.com/", "printable ASCII"),
        ("https://bücher.example/", "punycode"),
        ("https://[::1/", "neither a name nor an address"),
        ("https://[not-v6]/", "neither a name nor an address"),
        ("https://[1.2.3.4]/", "neither a name nor an address"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://-bad.example/", "not a valid host name"),
        ("https://bad-.example/", "not a valid host name"),
        ("https://a..example/", "not a valid host name"),
        ("https://" + "a" * 64 + ".example/", "not a valid host name"),
        ("https://2130706433/", "four decimal numbers"),
        ("https://0x7f.1/", "four decimal numbers"),
        ("https://127.1/", "four decimal numbers"),
        ("https://017.0.0.1/", "four decimal numbers"),
        ("https://example.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_malformed_urls(url: str, why: str) -> None:
    with pytest.raises(MalformedUrl, match=why):
        parse(url)
    # At delivery, a malformed URL is one more URL not to send to.
    with pytest.raises(WebhookUrlNotAllowed, match=why):
        resolve_allowed(url, allow_private=True)


def test_the_longest_url_is_2048_characters() -> None:
    url = "https://93.184.216.34/" + "a" * (2048 - len("https://93.184.216.34/"))
    assert parse(url).url == url
    with pytest.raises(MalformedUrl):
        parse(url + "a")


def test_parts_of_a_url() -> None:
    target = parse("HTTPS://Hooks.Example.COM:8443/p/a?t=h#f")
    assert target == Target(
        "https://Hooks.Example.COM:8443/p/a?t=h#f", "https", "hooks.example.com", 8443, None
    )
    assert parse("Http://example.com").port == 80
    assert parse("https://example.com:/x").port == 443
    assert parse("https://xn--bcher-kva.example/").host == "xn--bcher-kva.example"
    assert parse("https://in_ternal.example./").host == "in_ternal.example."
    assert parse("http://[2606:4700::1111]:81/").host == "2606:4700::1111"


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "api.localhost", "a.b.localhost."]
)
def test_localhost_is_the_loopback_without_asking_dns(host: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed, match="is the loopback"):
        run_check(f"http://{host}:8080/hooks")
    with pytest.raises(WebhookUrlNotAllowed, match="is the loopback"):
        resolve_allowed(f"http://{host}:8080/hooks", allow_private=False)


def test_with_allow_private_a_name_is_resolved_at_delivery_only() -> None:
    # At registration, nothing is resolved (a development receiver may not be up yet)...
    target = run_check("http://nonexistent.invalid:8080/x", allow_private=True)
    assert (target.host, target.port) == ("nonexistent.invalid", 8080)
    # ...at delivery, the addresses to connect to are the resolver's (the real one here).
    host, port, addresses = resolve_allowed("http://localhost:8080/x", allow_private=True)
    assert (host, port) == ("localhost", 8080)
    assert addresses and all(not is_public(ipaddress.ip_address(a)) for a in addresses)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A DNS of the test's own: name -> addresses (no entry: the name does not resolve)."""
    names: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def test_a_name_is_checked_by_every_address_it_resolves_to(
    resolver: dict[str, list[str]],
) -> None:
    resolver["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]
    resolver["rebind.example.com"] = ["93.184.216.34", "10.0.0.7"]
    resolver["mapped.example.com"] = ["::ffff:127.0.0.1"]
    resolver["metadata.example.com"] = ["169.254.169.254"]

    assert run_check("https://hooks.example.com/x").host == "hooks.example.com"
    assert resolve_allowed("https://hooks.example.com/x", allow_private=False) == (
        "hooks.example.com",
        443,
        ["93.184.216.34", "2606:2800:220:1::1"],  # each once, in the resolver's order
    )
    for name, address in [
        ("rebind.example.com", "10.0.0.7"),
        ("mapped.example.com", str(ipaddress.ip_address("::ffff:127.0.0.1"))),
        ("metadata.example.com", "169.254.169.254"),
    ]:
        # The name is said, never the address it resolves to (paysys's network is not
        # for a tenant to map).
        expected = re.escape(f"{name} resolves to an address that is not public")
        with pytest.raises(WebhookUrlNotAllowed, match=expected) as at_registration:
            run_check(f"https://{name}/x")
        with pytest.raises(WebhookUrlNotAllowed, match=expected) as at_delivery:
            resolve_allowed(f"https://{name}/x", allow_private=False)
        for refused in (at_registration.value, at_delivery.value):
            assert address not in refused.detail and "10.0" not in refused.detail
        assert resolve_allowed(f"https://{name}/x", allow_private=True)[2]


def test_a_name_that_does_not_resolve_is_refused(resolver: dict[str, list[str]]) -> None:
    with pytest.raises(WebhookUrlNotAllowed, match=r"nowhere\.example does not resolve"):
        run_check("https://nowhere.example/x")
    for allow_private in (False, True):  # nothing to connect to, either way
        with pytest.raises(WebhookUrlNotAllowed, match=r"nowhere\.example does not resolve"):
            resolve_allowed("https://nowhere.example/x", allow_private=allow_private)
