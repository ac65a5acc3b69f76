"""The lifecycle model (tests/lifecycle/) over the session's valkey: the same rules as
tests/unit/test_model.py, on the real server, so that a difference between fakeredis and valkey
(tests/unit/fake_valkey.py lists the gaps bridged there) fails here. Half the profile's
sequences: the bound keeps the tier's time, though valkey runs each step faster than
fakeredis."""

from __future__ import annotations

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test
from redis.asyncio import Redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.settings import Settings
from tests.lifecycle import REGRESSIONS, Backend, machine_for, replay

pytestmark = pytest.mark.integration

SHARE = 2


def _backend(settings: Settings) -> Backend:
    async def session_valkey() -> Redis:
        client = connect(settings.redis_url)
        await client.flushdb()  # the session's own server, emptied for each sequence
        return client

    return Backend(session_valkey, settings)


def test_the_lifecycle_keeps_every_guarantee_over_valkey(settings: Settings) -> None:
    backend = _backend(settings)
    examples = max(1, hypothesis_settings().max_examples // SHARE)
    run_state_machine_as_test(
        machine_for(backend), settings=hypothesis_settings(max_examples=examples)
    )
    assert backend.sequences >= examples


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_a_kept_example_holds_over_valkey(settings: Settings, name: str) -> None:
    replay(_backend(settings), REGRESSIONS[name])
