"""Webhook signatures: the two schemes a delivery carries, and their verification.

- AgentField: `X-AgentField-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
- Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
  `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is
  the base64 part of a `whsec_` secret, or the secret's UTF-8 bytes otherwise.

The sender signs the exact bytes it sends; a receiver must verify the raw body it read, before
any JSON parsing, or the signature will not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from agentfield_arq.kernel.errors import InvalidSignature

AGENTFIELD_HEADER = "X-AgentField-Signature"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300

Scheme = Literal["standard", "agentfield"]


def standard_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks scheme for `secret`."""
    if secret.startswith(SECRET_PREFIX) and len(secret) > len(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            pass  # not of the `whsec_<base64>` form after all: the raw bytes are the key
    return secret.encode()


def agentfield_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the X-AgentField-Signature value of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64>`: the webhook-signature value of `body` sent as `webhook_id` at `timestamp`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str | None, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The identification and (with a secret) signature headers of one delivery attempt."""
    headers = {ID_HEADER: webhook_id, TIMESTAMP_HEADER: str(timestamp)}
    if secret:
        headers[SIGNATURE_HEADER] = standard_signature(secret, webhook_id, timestamp, body)
        headers[AGENTFIELD_HEADER] = agentfield_signature(secret, body)
    return headers


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    scheme: Scheme = "standard",
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its decoded JSON body; raise InvalidSignature if not.

    The default, `"standard"`, checks the Standard Webhooks signature, which is bound to a
    timestamp, so a replay is refused after `tolerance_s`. `"agentfield"` checks
    X-AgentField-Signature, which has no timestamp: choose it only for receivers that cannot
    read the other. There is no "either" mode, since stripping the timestamped headers would
    then downgrade a delivery to the replayable scheme. Comparisons are constant-time.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    if scheme == "standard":
        _verify_standard(body, lowered, secret, tolerance_s, time.time() if now is None else now)
    elif scheme == "agentfield":
        _verify_agentfield(body, lowered, secret)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidSignature("the signed body is not JSON") from exc


def _verify_agentfield(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    received = headers.get(AGENTFIELD_HEADER.lower())
    if not received:
        raise InvalidSignature(f"missing {AGENTFIELD_HEADER} header")
    expected = agentfield_signature(secret, body)
    if not hmac.compare_digest(received.strip().encode(), expected.encode()):
        raise InvalidSignature(f"{AGENTFIELD_HEADER} does not match the body")


def _verify_standard(
    body: bytes, headers: Mapping[str, str], secret: str, tolerance_s: float, now: float
) -> None:
    webhook_id = headers.get(ID_HEADER)
    stamp = headers.get(TIMESTAMP_HEADER)
    received = headers.get(SIGNATURE_HEADER)
    if not (webhook_id and stamp and received):
        raise InvalidSignature(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not unix seconds") from exc
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is more than {tolerance_s:g}s from now")
    expected = standard_signature(secret, webhook_id, timestamp, body).encode()
    # The header may carry several space-separated signatures (during a secret rotation).
    matched = False
    for candidate in received.split():
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} matches the body")
