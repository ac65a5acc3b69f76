"""API keys at the door: missing and unknown keys, both headers, roles, revocation (at once,
or within the key cache's bound), the per-key rate, and auth off only on loopback."""

from __future__ import annotations

import msgspec
import pytest

from agentfield_arq.api.app import create_app
from agentfield_arq.core import credentials
from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import Identity, KeyStore, Lookup, Role
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.errors import ConfigurationError
from tests.integration.served import served
from tests.keys import bearer, issue

pytestmark = pytest.mark.integration

NODES = "/api/v1/nodes"


async def test_a_request_without_a_key_is_401_with_a_bearer_challenge(settings: Settings) -> None:
    async with served(settings, key=None) as anonymous:
        answer = await anonymous.get(NODES)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert "Authorization: Bearer" in answer.json()["error"]
    assert answer.headers["www-authenticate"] == 'Bearer realm="agentfield-arq"'


@pytest.mark.parametrize(
    "key", ["afk_" + "x" * 43, "not-a-key", "afk_" + "y" * 300], ids=["unknown", "odd", "long"]
)
async def test_an_unknown_or_malformed_key_is_401(settings: Settings, key: str) -> None:
    async with served(settings, key=key) as client:
        answer = await client.get(NODES)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"


async def test_health_and_the_document_need_no_key(settings: Settings) -> None:
    async with served(settings, key=None) as anonymous:
        for path in ("/health", "/api/v1/health", "/openapi.json"):
            assert (await anonymous.get(path)).status_code == 200, path


async def test_a_stored_key_is_taken_as_bearer_and_as_x_api_key(settings: Settings) -> None:
    key = await issue(settings, Role.CALLER)
    async with served(settings, key=None) as client:
        assert (await client.get(NODES, headers=bearer(key))).status_code == 200
        assert (await client.get(NODES, headers={"X-API-Key": key})).status_code == 200


async def test_a_caller_key_on_an_admin_route_is_403_forbidden(settings: Settings) -> None:
    key = await issue(settings, Role.CALLER)
    async with served(settings, key=key) as caller:
        answer = await caller.get("/api/v1/webhooks/dead")
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"


async def test_without_the_key_cache_a_revoked_key_is_refused_from_the_next_request_on(
    settings: Settings,
) -> None:
    settings = msgspec.structs.replace(settings, key_cache_s=0)
    redis = connect(settings.redis_url)
    store = KeyStore(redis, settings)
    record, key = await store.create(Role.CALLER)
    async with served(settings, key=key) as client:
        assert (await client.get(NODES)).status_code == 200
        assert await store.revoke(record.id)
        assert (await client.get(NODES)).status_code == 401
    assert [r.id for r in await store.list()] == []
    await redis.aclose()


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_another_process_refuses_a_revoked_key_once_its_cache_bound_has_passed(
    settings: Settings,
) -> None:
    settings = msgspec.structs.replace(settings, key_cache_s=1.0)
    redis = connect(settings.redis_url)
    clock = Clock()
    replica, admin = KeyStore(redis, settings, clock), KeyStore(redis, settings)
    record, key = await admin.create(Role.CALLER)
    assert isinstance(await replica.lookup(key), Identity)
    assert await admin.revoke(record.id)
    assert await admin.lookup(key) is Lookup.UNKNOWN  # the revoking process: at once
    clock.now += 0.9
    assert isinstance(await replica.lookup(key), Identity)  # trusted within the bound
    clock.now += 0.1
    assert await replica.lookup(key) is Lookup.UNKNOWN
    await redis.aclose()


async def test_a_known_key_is_counted_in_blocks_and_never_past_its_rate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = msgspec.structs.replace(settings, key_rate_limit=300, key_cache_s=60.0)
    monkeypatch.setattr(credentials, "now_ms", lambda: 1_764_609_600_000)  # one rate window
    redis = connect(settings.redis_url)
    store = KeyStore(redis, settings)
    _, key = await store.create(Role.CALLER)
    before = await redis.info("commandstats")
    answers = [await store.lookup(key) for _ in range(320)]
    after = await redis.info("commandstats")
    assert [isinstance(a, Identity) for a in answers] == [True] * 300 + [False] * 20
    assert set(answers[300:]) == {Lookup.LIMITED}
    # A block is 3 requests: one lookup, then about one INCRBY per block.
    incrby = after["cmdstat_incrby"]["calls"] - before.get("cmdstat_incrby", {}).get("calls", 0)
    assert incrby <= 300 // 3 + 20
    await redis.aclose()


async def test_a_key_over_its_rate_is_429_with_retry_after(settings: Settings) -> None:
    settings = msgspec.structs.replace(settings, key_rate_limit=3)
    key = await issue(settings, Role.CALLER)
    async with served(settings, key=key) as client:
        # Eight in a row straddle at most two one-second windows, of which three each fit.
        answers = [await client.get(NODES) for _ in range(8)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert {a.json()["code"] for a in limited} == {"rate_limited"}
    assert {a.headers["retry-after"] for a in limited} == {"1"}


async def test_the_admin_key_has_no_rate_limit(settings: Settings) -> None:
    settings = msgspec.structs.replace(settings, key_rate_limit=1)
    async with served(settings) as admin:
        assert {(await admin.get(NODES)).status_code for _ in range(5)} == {200}


async def test_with_auth_off_a_request_without_a_key_is_served(settings: Settings) -> None:
    async with served(msgspec.structs.replace(settings, auth=False), key=None) as anonymous:
        assert (await anonymous.get("/api/v1/webhooks/dead")).status_code == 200


def test_the_api_refuses_to_start_without_auth_on_a_public_address(settings: Settings) -> None:
    public = msgspec.structs.replace(settings, auth=False, api_host="0.0.0.0")
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_AUTH=false"):
        create_app(public)
