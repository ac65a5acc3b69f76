"""The lifecycle model (tests/lifecycle/) over fakeredis (tests/unit/fake_valkey.py,
where the gaps it bridges are listed): the real Lua scripts, run by fakeredis' Lua interpreter
(lupa) in this process, no socket."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test

from agentfield_arq.core.settings import from_env
from tests.lifecycle import EXPLORED, REGRESSIONS, Backend, machine_for, replay
from tests.unit.fake_valkey import fake_valkey


def _backend() -> Backend:
    server = fakeredis.FakeServer(server_type="valkey", version=(8,))
    return Backend(lambda: fake_valkey(server), from_env({}, key_prefix="m"))


def test_the_lifecycle_keeps_every_guarantee_over_fakeredis() -> None:
    backend = _backend()
    run_state_machine_as_test(machine_for(backend))
    if hypothesis_settings().derandomize:  # the same sequences every run: CI's
        missed = EXPLORED - set(backend.outcomes)
        assert not missed, f"the machine no longer reaches {sorted(missed)}"


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_a_kept_example_holds_over_fakeredis(name: str) -> None:
    replay(_backend(), REGRESSIONS[name])
