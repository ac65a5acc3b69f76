"""A fakeredis server that runs the project's Lua scripts in this process (no socket), for the
unit tier: the lifecycle model (test_model.py) and the execution rules (test_execution_rules.py).

fakeredis gaps met, and how this tier bridges them (tests/integration/test_model.py runs the
lifecycle model on valkey, where none of this applies, so a bridge that hid a difference fails
there):

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
from fakeredis import aioredis
from redis.asyncio import Redis


def _sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


async def fake_valkey(server: fakeredis.FakeServer | None = None) -> Redis:
    """A client of `server` (emptied), or of a new server, speaking as valkey 8, with
    `redis.sha1hex`. Reusing a server keeps its Lua runtime and compiled scripts."""
    server = server or fakeredis.FakeServer(server_type="valkey", version=(8,))
    client = aioredis.FakeRedis(server=server)
    await client.flushall()
    await client.eval("return 1", 0)  # type: ignore[misc]  # redis-py's async stubs
    runtime: Any = server._lua_runtime  # type: ignore[attr-defined]  # created by that EVAL
    runtime.globals()[b"redis"][b"sha1hex"] = _sha1hex
    return client
