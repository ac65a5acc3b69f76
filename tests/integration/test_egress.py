"""Where a worker may connect to call an agent, and what it does with answers and failures its
code did not expect: every one ends the execution, none leaves it `running`.

The agent's answer is raw bytes behind httpcore's mock network backend, so httpx and h11 parse
it as they would off a socket, and the worker's connect policy sits between the name
resolution (a stand-in resolver) and that backend, as in a worker."""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.execution import submit
from agentfield_arq.core.guard import AgentPolicy, GuardedBackend, GuardedTransport, agent_policy
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.runner import Runner
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 2


class Network(httpcore.AsyncMockBackend):
    """The agent's side of the wire: every connection reads `chunks`; records where it went."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(chunks)
        self.connected: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


def answer(body: bytes, content_type: str = "application/json", *headers: bytes) -> list[bytes]:
    """An HTTP/1.1 200 answer as the agent would write it."""
    head = [b"HTTP/1.1 200 OK", b"Content-Type: " + content_type.encode(), *headers]
    head.append(b"Content-Length: %d" % len(body))
    return [b"\r\n".join(head) + b"\r\n\r\n", body]


class Harness:
    """Node `finance` at `base_url`, resolving to `address`; runners over a policy."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = ExecutionStore(redis, settings)
        self.nodes = NodeRegistry(redis, settings)
        self.clients: list[httpx.AsyncClient] = []

    async def node(self, base_url: str) -> None:
        node = NodeRegistration(
            id="finance", base_url=base_url, reasoners=[TargetSpec(id="deep_analysis")]
        )
        await self.nodes.register(b'{"id": "finance"}', node)

    def runner(
        self, network: Network, address: str = "10.0.0.7", policy: AgentPolicy | None = None
    ) -> Runner:
        async def resolve(host: str, port: int) -> list[str]:
            return [address]

        checks = policy or AgentPolicy(allow_private=True)
        transport = GuardedTransport(GuardedBackend(checks, resolve, network), httpx.Limits())
        return self.runner_over(transport)

    def runner_over(self, transport: httpx.AsyncBaseTransport) -> Runner:
        http = httpx.AsyncClient(transport=transport, timeout=2.0)
        self.clients.append(http)
        return Runner(self.store, self.nodes, http, self.settings)

    async def submit(self) -> str:
        request = ExecuteRequest(input={"quarter": "Q3"})
        return (await submit(self.store, "finance.deep_analysis", request, {})).execution_id

    async def settle(self, runner: Runner, execution_id: str) -> dict[str, Any]:
        """Attempts back to back, as arq would after each delay; the final document."""
        for _ in range(MAX_ATTEMPTS + 1):
            if await runner.run(execution_id, last_try=False) is None:
                break
        raw = await self.store.get_doc(execution_id)
        assert raw is not None
        doc: dict[str, Any] = json.loads(raw)
        return doc


@pytest.fixture
async def harness(redis_client: Redis, settings: Settings) -> AsyncIterator[Harness]:
    settings = msgspec.structs.replace(settings, agent_max_attempts=MAX_ATTEMPTS)
    harness = Harness(redis_client, settings)
    await harness.node("http://finance.test:8001")
    yield harness
    for http in harness.clients:
        await http.aclose()


# ------------------------------------------------------------------------ the connect policy


async def test_an_agent_resolving_to_a_metadata_address_fails_at_once_without_a_connection(
    harness: Harness,
) -> None:
    network = Network(answer(b'{"secret": "credentials"}'))
    execution_id = await harness.submit()
    doc = await harness.settle(harness.runner(network, "169.254.169.254"), execution_id)
    assert doc["status"] == "failed"
    assert doc["error"] == (
        "refused to connect to the agent at finance.test: "
        "169.254.169.254 is a link-local address, never allowed"
    )
    assert "result" not in doc
    assert network.connected == []
    assert (await harness.store.claim(execution_id, "", 0)).status == "failed"


async def test_a_bare_worker_refuses_a_loopback_agent_naming_the_setting_that_allows_it(
    harness: Harness,
) -> None:
    network = Network(answer(b'{"revenue": 42}'))
    execution_id = await harness.submit()
    policy = agent_policy(harness.settings)
    doc = await harness.settle(harness.runner(network, "127.0.0.1", policy), execution_id)
    assert doc["status"] == "failed"
    assert "AGENTFIELD_ARQ_AGENT_ALLOW_LOOPBACK" in doc["error"]
    assert network.connected == []


async def test_with_loopback_allowed_as_the_run_command_does_the_loopback_agent_is_called(
    harness: Harness,
) -> None:
    network = Network(answer(b'{"revenue": 42}'))
    execution_id = await harness.submit()
    settings = msgspec.structs.replace(harness.settings, agent_allow_loopback=True)
    doc = await harness.settle(
        harness.runner(network, "127.0.0.1", agent_policy(settings)), execution_id
    )
    assert (doc["status"], doc["result"]) == ("succeeded", {"revenue": 42})
    assert network.connected == ["127.0.0.1"]


# --------------------------------------------------------------- answers and crashes, handled


async def test_a_base_url_stored_without_the_strict_rule_fails_the_execution_naming_it(
    harness: Harness, redis_client: Redis
) -> None:
    # As a record written before registration read base_urls strictly would be.
    key = harness.nodes.keys.node("finance")
    await redis_client.hset(key, "base_url", "http://0177.0.0.1:8001")  # type: ignore[misc]  # redis-py's async stubs
    network = Network(answer(b"{}"))
    execution_id = await harness.submit()
    doc = await harness.settle(harness.runner(network), execution_id)
    assert doc["status"] == "failed"
    assert doc["error"].startswith("node 'finance': base_url: '0177.0.0.1' is not an IPv4")
    assert network.connected == []


async def test_an_unexpected_exception_fails_the_execution_and_is_logged_once_with_its_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug of ours")

    execution_id = await harness.submit()
    with caplog.at_level(logging.INFO, logger="agentfield_arq.core.runner"):
        doc = await harness.settle(harness.runner_over(httpx.MockTransport(crash)), execution_id)
    assert (doc["status"], doc["error"]) == ("failed", "internal error: RuntimeError")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert execution_id in tracebacks[0].getMessage()
    assert "a bug of ours" in caplog.text


async def test_an_answer_nested_too_deep_to_decode_fails_the_execution(harness: Harness) -> None:
    execution_id = await harness.submit()
    deep = b"[" * 100_000 + b"]" * 100_000
    doc = await harness.settle(harness.runner(Network(answer(deep))), execution_id)
    assert (doc["status"], doc["error"]) == ("failed", "agent answer is nested too deep to read")


async def test_an_answer_of_invalid_utf8_succeeds_as_a_string_with_replacement_characters(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    doc = await harness.settle(harness.runner(Network(answer(b'{"a": "\xff\xfe"}'))), execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", '{"a": "\ufffd\ufffd"}')


async def test_an_answer_that_is_not_json_succeeds_as_a_string_whatever_its_content_type(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    page = b"<html><body>hello</body></html>"
    doc = await harness.settle(harness.runner(Network(answer(page, "text/html"))), execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", page.decode())


async def test_an_answer_with_an_enormous_header_fails_without_being_sent_again(
    harness: Harness,
) -> None:
    # Sent in pieces, as a socket would deliver it; h11 refuses a head over 100 KiB.
    head, body = answer(b"{}", "application/json", b"X-Padding: " + b"a" * 1_000_000)
    network = Network([head[i : i + 65_536] for i in range(0, len(head), 65_536)] + [body])
    execution_id = await harness.submit()
    doc = await harness.settle(harness.runner(network), execution_id)
    assert doc["status"] == "failed"
    # The request went out: the agent may have run it, so it is not repeated.
    assert doc["error"].startswith("agent connection lost (RemoteProtocolError")
    assert doc["error"].endswith("not retried, it may have run")


async def test_a_record_that_crashes_the_sweep_fails_and_the_others_still_time_out(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [await harness.submit() for _ in range(3)]
    for execution_id in ids:  # their deadlines pass, as the record and the index say
        await harness.redis.hset(harness.store.keys.execution(execution_id), "deadline_ms", "0")  # type: ignore[misc]  # redis-py's async stubs
        await harness.redis.zadd(harness.store.keys.deadlines, {execution_id: 0})
    finish = harness.store.finish

    async def finish_crashing_on_the_first(
        execution_id: str, status: str, *a: Any, **k: Any
    ) -> Any:
        if execution_id == ids[0] and status == "timeout":
            raise RuntimeError("corrupt record")
        return await finish(execution_id, status, *a, **k)

    monkeypatch.setattr(harness.store, "finish", finish_crashing_on_the_first)
    with caplog.at_level(logging.ERROR, logger="agentfield_arq.core.runner"):
        changed = await harness.runner(Network([])).sweep()
    assert changed == 2
    docs = [json.loads(await harness.store.get_doc(i) or b"") for i in ids]
    assert [(d["status"], d["error"]) for d in docs] == [
        ("failed", "internal error: RuntimeError"),
        ("timeout", "execution deadline exceeded"),
        ("timeout", "execution deadline exceeded"),
    ]
    assert len([r for r in caplog.records if r.exc_info]) == 1
