"""Encoders, decoders, identifiers and clocks shared by every module (built once, reused)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import msgspec

json_encoder = msgspec.json.Encoder()
any_decoder = msgspec.json.Decoder()

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# Every pair of digits, by the 10 bits it spells: ids are spelled two digits at a time.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_ID_SHIFTS = tuple(range(120, -1, -10))  # an id's 26 digits (130 bits), most significant first
_TIME_SHIFTS = _ID_SHIFTS[:5]  # its first 10: the time part
_TIME_MASK = (1 << 50) - 1


def encode(value: Any) -> bytes:
    """Encode any msgspec-supported value as compact JSON."""
    return json_encoder.encode(value)


def decode(data: bytes | str, kind: Any = Any) -> Any:
    """Decode JSON into `kind`; raises `msgspec.ValidationError`/`DecodeError` on bad input."""
    return msgspec.json.decode(data, type=kind)


def canonical_json(data: bytes) -> bytes:
    """Compact re-encoding of a JSON document, so equal values compare equal as bytes.

    Raises `msgspec.DecodeError` when `data` is not JSON.
    """
    return json_encoder.encode(any_decoder.decode(data))


def text(value: bytes | str) -> str:
    """A Redis reply as str (clients here return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def now_ms() -> int:
    """Wall-clock unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """Format unix milliseconds as RFC 3339 UTC with millisecond precision."""
    return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=4)
def _second(s: int) -> str:
    # Every request stamps the time at least once: each second is formatted once.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))


def new_id(prefix: str, ms: int | None = None) -> str:
    """A URL-safe id that sorts by creation time: `prefix_` + 10 chars of time + 16 of randomness.

    The time part is the unix millisecond in Crockford base32 (as in ULID), so ids from different
    API replicas interleave by creation time; 80 random bits make collisions negligible.
    """
    value = (((now_ms() if ms is None else max(ms, 0)) & _TIME_MASK) << 80) | int.from_bytes(
        os.urandom(10)
    )
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _ID_SHIFTS])


def id_floor(prefix: str, ms: int) -> str:
    """The time part of the ids made at `ms`, `prefix_` included: every id made at `ms` or later
    sorts at or after it, every id made earlier sorts before it."""
    value = (max(ms, 0) & _TIME_MASK) << 80
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _TIME_SHIFTS])


def id_ms(value: str, prefix: str) -> int | None:
    """The unix millisecond an id of `new_id(prefix)` was made at, or None if it is not one."""
    head = f"{prefix}_"
    if not value.startswith(head) or len(value) != len(head) + 26:
        return None
    stamp = 0
    for char in value[len(head) : len(head) + 10]:
        digit = _CROCKFORD.find(char)
        if digit < 0:
            return None
        stamp = stamp * 32 + digit
    return stamp
