"""API keys of the tests: the deployment's admin key (AGENTFIELD_ARQ_ADMIN_KEY of every test
system), and keys of other roles made in a test's own Redis."""

from __future__ import annotations

from collections.abc import Iterable

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import KeyStore, Role
from agentfield_arq.core.settings import Settings

ADMIN_KEY = "afk_test-admin-key-of-every-test-deployment"


def bearer(key: str) -> dict[str, str]:
    """The header that carries `key`."""
    return {"Authorization": f"Bearer {key}"}


async def issue(settings: Settings, role: Role, nodes: Iterable[str] = ()) -> str:
    """A new key of `role` (owning `nodes`) stored in the Redis of `settings`."""
    redis = connect(settings.redis_url)
    try:
        _, plain = await KeyStore(redis, settings).create(role, nodes)
    finally:
        await redis.aclose()
    return plain
