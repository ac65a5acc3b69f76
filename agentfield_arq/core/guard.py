"""The SSRF guard of webhook deliveries: where workers may connect on a caller's behalf.

A caller chooses the webhook URL, and workers sit inside the network, so by default a delivery
may only reach public addresses: loopback, private, link-local (cloud metadata), shared,
multicast and reserved ranges are refused, unless the host or address is listed as trusted.

The check happens where the connection is made: the network backend resolves the host once,
checks every address it resolved to, and connects to a checked address. There is no second
lookup for a rebinding DNS server to answer differently, and pooled connections were checked
when they were opened. TLS still verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from agentfield_arq.kernel.errors import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# The well-known NAT64 prefix: its last 32 bits are an IPv4 address reached through a gateway.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((f"{address} is a {what} address" for what, hit in checks if hit), None)


class Policy:
    """Which destinations deliveries may reach: public ones, plus the trusted hosts/networks."""

    def __init__(self, block_private: bool = True, allowed: str | Iterable[str] = "") -> None:
        self.block_private = block_private
        entries = allowed.split(",") if isinstance(allowed, str) else list(allowed)
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in (e.strip().lower().strip("[]") for e in entries):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.rstrip("."))

    def check(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses of `host` it is safe to connect to; refuses if any one is not.

        All must pass: a host that resolves to one public and one private address could
        otherwise be steered to the private one.
        """
        if not addresses:
            raise DestinationRefused(f"{host} did not resolve to any address")
        if not self.block_private or host.lower().rstrip(".") in self.hosts:
            return addresses
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if any(address in network for network in self.networks):
                continue
            reason = refusal(address)
            if reason is not None:
                raise DestinationRefused(f"refused to deliver to {host}: {reason}")
        return addresses


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for TCP, in the resolver's order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the policy applied between resolution and connection."""

    def __init__(
        self,
        policy: Policy,
        resolver: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, check every address, then connect to the first checked one that answers."""
        try:
            found = await self.resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = self.policy.check(host, found)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a webhook goes to a URL."""
        raise DestinationRefused("webhooks are not delivered to unix sockets")

    async def sleep(self, seconds: float) -> None:
        """Delegated to the real backend (httpcore uses it between connection retries)."""
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a GuardedBackend; environment proxies are never used, since a
    proxy would make the connection on our behalf, unchecked."""

    def __init__(self, backend: GuardedBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no argument for the network backend: replace its pool with one that has it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
