"""The lifecycle model (tests/lifecycle_model.py) over fakeredis: the real Lua scripts, run by
fakeredis' Lua interpreter (lupa) in this process, no socket.

fakeredis gaps met, and how this tier bridges them (tests/integration/test_model.py runs the
same rules on valkey, where none of this applies, so a bridge that hid a difference fails there):

- `redis.sha1hex` is missing from fakeredis' `redis` table (finish.lua digests each outcome
  with it): added below, as Python's SHA-1 of the same bytes, the function valkey computes.
- `cjson` is fakeredis' own (Python's json): encode/decode/null only, no
  `encode_keep_buffer`, `decode_array_with_array_mt`, `cjson.array_mt`; the scripts use none.
  Numbers come out of Python's encoder, so 7 is "7" as in real cjson, but a non-integral double
  keeps Python's repr rather than cjson's 14 significant digits; the scripts encode integers only.
- `cmsgpack`, `bit` and `struct` are not loaded (valkey has them); the scripts use none.
- Key expiry follows the wall clock, not the scripts' `now`: the model expires records itself
  (when its clock passes a record's TTL) and checks that every TTL is set.
- Stream ids (`XADD *`) take the wall clock too; the model reads entries in order only.
- The Lua runtime is created at the first EVAL, so the bridge is installed after one.
- Each command costs fakeredis about 0.1 ms (parsing in Python): this tier runs slower than
  the integration tier's real server.
"""

from __future__ import annotations

import hashlib
from typing import Any

import fakeredis
import pytest
from fakeredis import aioredis
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test
from redis.asyncio import Redis

from agentfield_arq.core.settings import from_env
from tests.lifecycle_model import EXPLORED, REGRESSIONS, Backend, machine_for, replay


def _sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


async def fake_valkey() -> Redis:
    """A new, empty fakeredis server speaking as valkey 8, with `redis.sha1hex`."""
    server = fakeredis.FakeServer(server_type="valkey", version=(8,))
    client = aioredis.FakeRedis(server=server)
    await client.eval("return 1", 0)  # type: ignore[misc]  # redis-py's async stubs
    runtime: Any = server._lua_runtime  # type: ignore[attr-defined]  # created by that EVAL
    runtime.globals()[b"redis"][b"sha1hex"] = _sha1hex
    return client


def _backend() -> Backend:
    return Backend(fake_valkey, from_env({}, key_prefix="m"))


def test_the_lifecycle_keeps_every_guarantee_over_fakeredis() -> None:
    backend = _backend()
    run_state_machine_as_test(machine_for(backend))
    if hypothesis_settings().derandomize:  # the same sequences every run: CI's
        missed = EXPLORED - set(backend.outcomes)
        assert not missed, f"the machine no longer reaches {sorted(missed)}"


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_a_kept_example_holds_over_fakeredis(name: str) -> None:
    replay(_backend(), REGRESSIONS[name])
