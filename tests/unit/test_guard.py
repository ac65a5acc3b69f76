"""The SSRF guard refuses non-public destinations, checks every resolved address, and connects
only to an address it checked (no second DNS lookup to rebind)."""

from __future__ import annotations

import ipaddress
import typing

import httpcore
import httpx
import pytest

from agentfield_arq.core.guard import (
    SHARD_CONNECTIONS,
    AgentPolicy,
    GuardedBackend,
    GuardedTransport,
    Policy,
    ShardedTransport,
    agent_client,
    agent_policy,
    refusal,
    resolve,
)
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.errors import DestinationRefused


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_non_public_addresses_are_refused_naming_why(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_a_host_is_refused_if_any_of_its_addresses_is_private() -> None:
    with pytest.raises(DestinationRefused, match=r"10\.0\.0\.5 is a private"):
        Policy().check("rebind.example", ["93.184.216.34", "10.0.0.5"])


def test_trusted_hosts_and_networks_pass_and_others_do_not() -> None:
    policy = Policy(allowed="hooks.internal, 10.20.0.0/16,127.0.0.1")
    assert policy.check("hooks.internal", ["10.99.0.1"]) == ["10.99.0.1"]
    assert policy.check("HOOKS.internal.", ["10.99.0.1"]) == ["10.99.0.1"]
    assert policy.check("svc", ["10.20.3.4"]) == ["10.20.3.4"]
    assert policy.check("127.0.0.1", ["127.0.0.1"]) == ["127.0.0.1"]
    with pytest.raises(DestinationRefused):
        policy.check("svc", ["10.21.3.4"])
    with pytest.raises(DestinationRefused):
        policy.check("127.0.0.2", ["127.0.0.2"])


def test_with_blocking_off_everything_passes() -> None:
    assert Policy(block_private=False).check("localhost", ["127.0.0.1"]) == ["127.0.0.1"]


def test_a_host_without_addresses_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="did not resolve"):
        Policy(block_private=False).check("nowhere", [])


class _Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the real network: records where it was asked to connect."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.connected: list[tuple[str, int]] = []
        self.refuse = refuse

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError("refused")
        return httpcore.AsyncMockStream([])


def _resolver(answers: list[list[str]]) -> typing.Callable[[str, int], typing.Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return answers.pop(0)

    return resolve


async def test_the_backend_connects_to_the_address_it_checked_not_the_host_name() -> None:
    inner = _Recorder()
    backend = GuardedBackend(Policy(), _resolver([["93.184.216.34"]]), inner)
    await backend.connect_tcp("hooks.example.com", 443)
    assert inner.connected == [("93.184.216.34", 443)]


async def test_the_backend_refuses_before_connecting_anywhere() -> None:
    inner = _Recorder()
    backend = GuardedBackend(Policy(), _resolver([["93.184.216.34", "127.0.0.1"]]), inner)
    with pytest.raises(DestinationRefused, match="loopback"):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.connected == []


async def test_the_backend_tries_the_next_checked_address_when_one_fails() -> None:
    inner = _Recorder(refuse=frozenset({"2606:4700:4700::1111"}))
    resolver = _resolver([["2606:4700:4700::1111", "93.184.216.34"]])
    await GuardedBackend(Policy(), resolver, inner).connect_tcp("dual.example", 80)
    assert inner.connected == [("2606:4700:4700::1111", 80), ("93.184.216.34", 80)]


async def test_a_resolution_failure_is_a_connect_error() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        await GuardedBackend(Policy(), fail, _Recorder()).connect_tcp("nxdomain.example", 80)


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(DestinationRefused):
        await GuardedBackend(Policy(), inner=_Recorder()).connect_unix_socket("/run/docker.sock")


# ---------------------------------------------------------------- the connect policy of agents


@pytest.mark.parametrize(
    ("address", "setting"),
    [
        ("127.0.0.1", "ALLOW_LOOPBACK"),
        ("::1", "ALLOW_LOOPBACK"),
        ("::ffff:127.0.0.1", "ALLOW_LOOPBACK"),
        ("10.1.2.3", "ALLOW_PRIVATE"),
        ("172.20.0.4", "ALLOW_PRIVATE"),
        ("192.168.1.1", "ALLOW_PRIVATE"),
        ("fd12:3456::1", "ALLOW_PRIVATE"),
        ("100.64.0.1", "ALLOW_PRIVATE"),
    ],
)
def test_by_default_an_agent_call_refuses_loopback_and_private_naming_the_setting(
    address: str, setting: str
) -> None:
    with pytest.raises(DestinationRefused, match=f"AGENTFIELD_ARQ_AGENT_{setting}"):
        AgentPolicy().check("agent.internal", [address])


def test_an_agent_on_a_public_address_is_called_by_default() -> None:
    assert AgentPolicy().check("agent.example", ["93.184.216.34"]) == ["93.184.216.34"]


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure, Oracle...
        "169.254.170.2",  # ECS task credentials
        "fe80::1",
        "100.100.100.200",  # Alibaba
        "fd00:ec2::254",  # AWS over IPv6
        "fd20:ce::254",  # GCP over IPv6
        "168.63.129.16",  # Azure's wire server
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
    ],
)
def test_link_local_metadata_and_unroutable_addresses_are_refused_whatever_is_allowed(
    address: str,
) -> None:
    everything = AgentPolicy(
        allow_loopback=True,
        allow_private=True,
        networks="0.0.0.0/0,::/0,169.254.0.0/16,fd00::/8,100.64.0.0/10,168.63.129.0/24",
    )
    with pytest.raises(DestinationRefused, match="never allowed"):
        everything.check("metadata.google.internal", [address])


def test_allowing_loopback_allows_loopback_only() -> None:
    policy = AgentPolicy(allow_loopback=True)
    assert policy.check("localhost", ["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]
    with pytest.raises(DestinationRefused, match="private"):
        policy.check("svc", ["10.0.0.5"])


def test_allowing_private_allows_every_private_range_but_not_loopback() -> None:
    policy = AgentPolicy(allow_private=True)
    assert policy.check("svc", ["10.0.0.5", "fd12::1", "100.64.3.4"]) == [
        "10.0.0.5",
        "fd12::1",
        "100.64.3.4",
    ]
    with pytest.raises(DestinationRefused, match="loopback"):
        policy.check("localhost", ["127.0.0.1"])


def test_allowed_networks_allow_their_addresses_and_no_others() -> None:
    policy = AgentPolicy(networks="172.30.240.0/24, fd00:1::/64,127.0.0.1")
    assert policy.check("finance", ["172.30.240.7"]) == ["172.30.240.7"]
    assert policy.check("finance", ["fd00:1::9"]) == ["fd00:1::9"]
    assert policy.check("localhost", ["127.0.0.1"]) == ["127.0.0.1"]
    for other in ("172.30.241.7", "10.0.0.1", "127.0.0.2"):
        with pytest.raises(DestinationRefused):
            policy.check("finance", [other])


def test_an_agent_host_is_refused_if_any_of_its_addresses_is() -> None:
    with pytest.raises(DestinationRefused, match=r"at rebind\.example: 10\.0\.0\.5"):
        AgentPolicy().check("rebind.example", ["93.184.216.34", "10.0.0.5"])


def test_allowed_networks_take_cidrs_not_host_names() -> None:
    with pytest.raises(ValueError, match=r"not a CIDR network: agents\.internal"):
        AgentPolicy(networks="10.0.0.0/8,agents.internal")


async def test_the_backend_refuses_an_agent_host_resolving_to_metadata_before_connecting() -> None:
    inner = _Recorder()
    backend = GuardedBackend(
        AgentPolicy(allow_private=True), _resolver([["169.254.169.254"]]), inner
    )
    with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254 is a link-local address"):
        await backend.connect_tcp("finance.internal", 8001)
    assert inner.connected == []


async def test_the_agent_backend_connects_to_the_address_it_checked() -> None:
    inner = _Recorder()
    # A rebinding server would answer differently the second time; there is no second time.
    resolver = _resolver([["10.0.0.7"], ["169.254.169.254"]])
    await GuardedBackend(AgentPolicy(allow_private=True), resolver, inner).connect_tcp("fin", 80)
    assert inner.connected == [("10.0.0.7", 80)]


# ---------------------------------------------------------------------------- exact edges
# (added where mutation testing showed the suite would not notice a change)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("::", ":: is a unspecified address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("4000::1", "4000::1 is a reserved address"),
        ("100.64.0.1", "100.64.0.1 is a not globally routable address"),
    ],
)
def test_a_refusal_says_exactly_why(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


def test_a_policy_trusts_nothing_by_default() -> None:
    policy = Policy()
    assert (policy.hosts, policy.networks) == (set(), [])


def test_trusted_entries_may_be_a_list_bracketed_loose_or_dotted() -> None:
    policy = Policy(allowed=["", "[::1]", "10.1.2.3/8", "Hooks.Internal."])
    assert policy.networks == [ipaddress.ip_network("::1/128"), ipaddress.ip_network("10.0.0.0/8")]
    assert policy.hosts == {"hooks.internal"}
    assert Policy(allowed=",10.0.0.0/8").networks == [ipaddress.ip_network("10.0.0.0/8")]


def test_a_trusted_host_may_be_written_with_its_trailing_dot() -> None:
    assert Policy(allowed="hooks.internal").check("hooks.internal.", ["10.0.0.1"]) == ["10.0.0.1"]


def test_a_scoped_address_is_checked_without_its_zone() -> None:
    assert Policy(allowed="fe80::/10").check("lan", ["fe80::1%eth0"]) == ["fe80::1%eth0"]


def test_a_trusted_address_does_not_wave_the_next_one_through() -> None:
    with pytest.raises(DestinationRefused, match=r"^refused to deliver to h: 127\.0\.0\.1 is a"):
        Policy(allowed="10.0.0.0/8").check("h", ["10.0.0.1", "127.0.0.1"])


class _Options(_Recorder):
    """Records every argument of the connection it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[object, ...]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port, timeout, local_address, socket_options))
        return await super().connect_tcp(host, port)

    async def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))


async def test_the_backend_resolves_the_host_and_port_asked_and_passes_every_option_on() -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["93.184.216.34"]

    inner = _Options()
    options = [(6, 1, 1)]
    await GuardedBackend(Policy(), resolve, inner).connect_tcp(
        "hooks.example.com", 8443, 2.5, "0.0.0.0", options
    )
    assert asked == [("hooks.example.com", 8443)]
    assert inner.calls == [("93.184.216.34", 8443, 2.5, "0.0.0.0", options)]


async def test_when_every_address_fails_the_last_failure_is_raised() -> None:
    inner = _Recorder(refuse=frozenset({"93.184.216.34", "93.184.216.35"}))
    resolver = _resolver([["93.184.216.34", "93.184.216.35"]])
    with pytest.raises(httpcore.ConnectError, match=r"^refused$"):
        await GuardedBackend(Policy(), resolver, inner).connect_tcp("down.example", 80)


async def test_unix_sockets_are_refused_saying_so_and_sleeps_are_delegated() -> None:
    inner = _Options()
    backend = GuardedBackend(Policy(), inner=inner)
    with pytest.raises(DestinationRefused, match=r"^workers do not connect to unix sockets$"):
        await backend.connect_unix_socket("/run/docker.sock")
    await backend.sleep(0.25)
    assert inner.calls == [("sleep", 0.25)]


async def test_resolve_answers_each_address_once() -> None:
    assert await resolve("127.0.0.1", 8080) == ["127.0.0.1"]


def test_the_guarded_transport_s_pool_uses_the_guarded_backend_and_the_limits() -> None:
    backend = GuardedBackend(Policy(), inner=_Recorder())
    limits = httpx.Limits(max_connections=7, max_keepalive_connections=3, keepalive_expiry=9.0)
    pool = GuardedTransport(backend, limits)._pool
    assert pool._network_backend is backend
    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
    assert pool._keepalive_expiry == 9.0
    assert pool._ssl_context is not None


def test_the_guarded_transport_ignores_the_environment_s_tls_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    GuardedTransport(GuardedBackend(Policy(), inner=_Recorder()), httpx.Limits())


def test_an_agent_host_without_addresses_is_refused_naming_it() -> None:
    with pytest.raises(DestinationRefused, match=r"^agent\.test did not resolve to any address$"):
        AgentPolicy().check("agent.test", [])


def test_the_agent_policy_follows_each_of_its_settings() -> None:
    loopback = agent_policy(from_env({}, agent_allow_loopback=True))
    assert (loopback.allow_loopback, loopback.allow_private, loopback.networks) == (True, False, [])
    private = agent_policy(from_env({}, agent_allow_private=True))
    assert (private.allow_loopback, private.allow_private) == (False, True)
    listed = agent_policy(from_env({}, agent_allowed_networks="10.0.0.0/8"))
    assert listed.networks == [ipaddress.ip_network("10.0.0.0/8")]


async def test_the_agent_client_has_the_call_timeout_no_redirects_and_no_environment() -> None:
    settings = from_env({}, agent_timeout_s=7.0, worker_concurrency=5)
    client = agent_client(settings)
    try:
        assert client.timeout == httpx.Timeout(7.0)
        assert client.follow_redirects is False
        assert client.trust_env is False
        shards = client._transport.shards  # type: ignore[attr-defined]  # the guarded pools
        assert [shard._pool._max_connections for shard in shards] == [5]
    finally:
        await client.aclose()


async def test_the_agent_client_spreads_thousands_of_slots_over_small_pools() -> None:
    client = agent_client(from_env({}, worker_concurrency=2000))
    try:
        transport = client._transport
        assert isinstance(transport, ShardedTransport)
        sizes = {shard._pool._max_connections for shard in transport.shards}  # type: ignore[attr-defined]  # guarded pools
        assert (sizes, len(transport.shards)) == ({SHARD_CONNECTIONS}, 2000 // 16 + 1)
    finally:
        await client.aclose()


class _Refusing(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)


class _Answering(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"{}"))


async def test_a_sharded_call_counts_as_busy_until_its_response_is_closed() -> None:
    transport = ShardedTransport([_Answering(), _Answering()])
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("POST", "http://agent.test/reasoners/x") as response:
            assert sum(transport.busy) == 1
            await response.aread()
        assert transport.busy == [0, 0]
    failing = ShardedTransport([_Refusing()])
    async with httpx.AsyncClient(transport=failing) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://agent.test/reasoners/x")
    assert failing.busy == [0]
