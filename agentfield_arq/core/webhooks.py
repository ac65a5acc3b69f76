"""Webhook registrations: what a caller may register, checked before it is stored. (Receivers
verify deliveries with `agentfield_arq.verify`, in the kernel.)"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from agentfield_arq.kernel.errors import InvalidWebhook
from agentfield_arq.kernel.models import WebhookSpec

MAX_SECRET_CHARS = 4096
MAX_HEADERS = 20
MAX_HEADER_CHARS = 512
MAX_URL_CHARS = 2048
# What `webhook.events` may list; `completed` is sent whether listed or not.
EVENTS = ("started", "progress", "completed")
# Headers the sender sets itself; a caller's webhook headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "host",
     "connection", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature",
     "x-agentfield-signature"}
)  # fmt: skip
# What httpx can send: a token as header name (RFC 9110), printable ASCII as value.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\x20-\x7e\t]*")


def validate(raw: Any) -> WebhookSpec:
    """Check a webhook block against the contract; raises InvalidWebhook naming the field."""
    try:
        spec = msgspec.convert(raw, WebhookSpec)
    except msgspec.ValidationError as exc:
        raise InvalidWebhook(f"webhook: {exc}") from exc
    _check_url(spec.url)
    unknown = [e for e in spec.events if e not in EVENTS]
    if unknown:
        raise InvalidWebhook(
            f"webhook.events: '{unknown[0][:32]}' is not one of {', '.join(EVENTS)}"
        )
    if spec.secret is not None and len(spec.secret) > MAX_SECRET_CHARS:
        raise InvalidWebhook(f"webhook.secret: longer than {MAX_SECRET_CHARS} characters")
    if len(spec.headers) > MAX_HEADERS:
        raise InvalidWebhook(f"webhook.headers: more than {MAX_HEADERS} headers")
    for name, value in spec.headers.items():
        if not name or len(name) > MAX_HEADER_CHARS or len(value) > MAX_HEADER_CHARS:
            raise InvalidWebhook(
                f"webhook.headers: name and value must be 1..{MAX_HEADER_CHARS} characters"
            )
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise InvalidWebhook(
                f"webhook.headers.{name[:64]}: not a valid HTTP header "
                "(name: RFC 9110 token; value: printable ASCII)"
            )
        if name.lower() in RESERVED_HEADERS:
            raise InvalidWebhook(f"webhook.headers.{name}: set by the sender, cannot be replaced")
    return spec


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise InvalidWebhook(f"webhook.url: longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidWebhook(f"webhook.url: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhook("webhook.url: scheme must be http or https")
    if not host:
        raise InvalidWebhook("webhook.url: has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook("webhook.url: must not embed credentials")
