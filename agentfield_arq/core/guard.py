"""Where workers may connect: webhook receivers (the SSRF guard) and agents (the connect policy).

A caller chooses the webhook URL and an agent chooses its base URL, and workers sit inside the
network, so neither may steer a worker anywhere. Webhook deliveries may only reach public
addresses: loopback, private, link-local (cloud metadata), shared, multicast and reserved ranges
are refused, unless the host or address is listed as trusted. Agent calls are refused
link-local, cloud metadata, unspecified, multicast and reserved addresses always, and loopback
and private ones unless a setting allows them (agents usually live on a private network: the
operator says which).

The check happens where the connection is made: the network backend resolves the host once,
checks every address it resolved to, and connects to a checked address. There is no second
lookup for a rebinding DNS server to answer differently, and pooled connections were checked
when they were opened. TLS still verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.errors import DestinationRefused

_SETTING = "AGENTFIELD_ARQ_AGENT_"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# The well-known NAT64 prefix: its last 32 bits are an IPv4 address reached through a gateway.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Cloud instance metadata and platform endpoints outside the link-local ranges (Alibaba, AWS
# and GCP over IPv6, Azure's wire server): they hand out credentials to whoever asks.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("100.100.100.200/32", "fd00:ec2::254/128", "fd20:ce::254/128", "168.63.129.16/32")
)
# Kinds (as `kind` names them) that no setting allows an agent call to reach.
NEVER = frozenset({"link-local", "cloud metadata", "unspecified", "multicast", "reserved"})


def _embedded(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one reaches (mapped, 6to4 or NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded
    return address


def kind(address: IPAddress) -> str | None:
    """What kind of non-public address `address` is (`loopback`, `private`...), or None."""
    address = _embedded(address)
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("cloud metadata", any(address in network for network in METADATA_NETWORKS)),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((what for what, hit in checks if hit), None)


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None when it is."""
    what = kind(address)
    return None if what is None else f"{address} is a {what} address"


def parse_networks(entries: str | Iterable[str]) -> tuple[set[str], list[IPNetwork]]:
    """Comma-separated (or listed) entries as host names and CIDR networks."""
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in (e.strip().lower().strip("[]") for e in items):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return hosts, networks


class Checker(typing.Protocol):
    """A connect policy: the addresses of `host` that may be connected to, or DestinationRefused."""

    def check(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses to connect to, in order; raises DestinationRefused."""
        ...  # pragma: no cover - a protocol


class Policy:
    """Which destinations deliveries may reach: public ones, plus the trusted hosts/networks."""

    def __init__(self, block_private: bool = True, allowed: str | Iterable[str] = "") -> None:
        self.block_private = block_private
        self.hosts, self.networks = parse_networks(allowed)

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


class AgentPolicy:
    """Which addresses agent calls may reach: public ones; loopback and private ones only as
    allowed (by switch, or by CIDR network); link-local, metadata and the like never."""

    def __init__(
        self,
        allow_loopback: bool = False,
        allow_private: bool = False,
        networks: str | Iterable[str] = "",
    ) -> None:
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        hosts, self.networks = parse_networks(networks)
        if hosts:
            raise ValueError(f"not a CIDR network: {sorted(hosts)[0]}")

    def refusal(self, address: IPAddress) -> str | None:
        """Why an agent call may not connect to `address`, or None when it may."""
        what = kind(address)
        if what is None:
            return None
        if what in NEVER:
            return f"{address} is a {what} address, never allowed"
        if any(a in n for a in (address, _embedded(address)) for n in self.networks):
            return None
        if what == "loopback":
            if self.allow_loopback:
                return None
            return f"{address} is a loopback address (allow with {_SETTING}ALLOW_LOOPBACK)"
        if self.allow_private:
            return None
        return (
            f"{address} is a {what} address "
            f"(allow with {_SETTING}ALLOW_PRIVATE or {_SETTING}ALLOWED_NETWORKS)"
        )

    def check(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses of `host` to connect to; refuses if any one is not allowed (a host
        resolving to one allowed and one refused address could be steered to the latter)."""
        if not addresses:
            raise DestinationRefused(f"{host} did not resolve to any address")
        for text in addresses:
            reason = self.refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason is not None:
                raise DestinationRefused(f"refused to connect to the agent at {host}: {reason}")
        return addresses


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for TCP, in the resolver's order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the policy applied between resolution and connection."""

    def __init__(
        self,
        policy: Checker,
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
        """Never: receivers and agents are reached at a URL's host."""
        raise DestinationRefused("workers do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        """Delegated to the real backend (httpcore uses it between connection retries)."""
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a GuardedBackend; environment proxies are never used, since a
    proxy would make the connection on our behalf, unchecked. Shards of one client share one
    TLS context (`ssl_context`): making one loads the CA store, tens of milliseconds each."""

    def __init__(
        self,
        backend: GuardedBackend,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, limits=limits, trust_env=False)
        # httpx has no argument for the network backend: replace its pool with one that has it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


# Connections of one shard of the agent client. httpcore's pool walks all its connections and
# waiting requests on every request and every response, which with thousands of calls in flight
# in one pool is quadratic: measured, a 2 s agent's calls took over 30 s with one pool of 2,000.
SHARD_CONNECTIONS = 16
# An idle connection to an agent is dropped this soon, before the agent's server drops it: with
# httpx's default (5 s, uvicorn's keep-alive too) a call could be sent on a connection the agent
# was closing that instant, and end in a ReadError after it was sent ("may have run", failed,
# not retried). Seen in the Sentinel failover test, whose outage leaves connections idle ~5 s.
AGENT_KEEPALIVE_S = 2.0


class _Released(httpx.AsyncByteStream):
    """A response body that says when it is closed (its call no longer holds a connection)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self.inner = inner
        self.release: Callable[[], None] | None = release

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            release, self.release = self.release, None
            if release is not None:
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """Small pools side by side in place of one large one. Each call goes to the less busy of
    two shards drawn at random (calls in flight, until the response is closed), which keeps the
    shards within a call or two of each other, and each shard's bookkeeping small."""

    def __init__(self, shards: list[httpx.AsyncBaseTransport]) -> None:
        self.shards = shards
        self.busy = [0] * len(shards)

    def _pick(self) -> int:
        first, second = random.randrange(len(self.shards)), random.randrange(len(self.shards))
        return first if self.busy[first] <= self.busy[second] else second

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the chosen shard."""
        shard = self._pick()
        self.busy[shard] += 1

        def release() -> None:
            self.busy[shard] -= 1

        try:
            response = await self.shards[shard].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, release)
        return response

    async def aclose(self) -> None:
        """Close every shard."""
        for shard in self.shards:
            await shard.aclose()


def agent_policy(settings: Settings) -> AgentPolicy:
    """The connect policy of agent calls, from the `AGENTFIELD_ARQ_AGENT_ALLOW*` settings."""
    return AgentPolicy(
        settings.agent_allow_loopback, settings.agent_allow_private, settings.agent_allowed_networks
    )


def agent_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client of agent calls: the connect policy applied, redirects not followed, no
    proxies from the environment. A `transport` (tests) replaces the guarded one, policy
    included."""
    if transport is None:
        # One connection per slot, in shards of SHARD_CONNECTIONS (and one shard more, so that
        # the busiest shards rarely make a call wait for a connection).
        slots = settings.worker_concurrency
        per_shard = min(SHARD_CONNECTIONS, slots)
        count = -(-slots // per_shard) + (1 if slots > per_shard else 0)
        limits = httpx.Limits(max_connections=per_shard, keepalive_expiry=AGENT_KEEPALIVE_S)
        backend = GuardedBackend(agent_policy(settings))
        context = httpx.create_ssl_context(trust_env=False)
        transport = ShardedTransport(
            [GuardedTransport(backend, limits, context) for _ in range(count)]
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.agent_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )
