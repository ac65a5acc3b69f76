"""Who may call each operation: the key a request carries (`Authorization: Bearer <key>` or
`X-API-Key: <key>`, the header AgentField's SDK sends), looked up in Redis on every request.

Each operation in operations/ names its `Access`: the least role its callers must have. What one
key may do to one execution or node (its own only) is checked by the endpoint, which reads the
identity put on the request here (`identity`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from starlette.requests import Request

from agentfield_arq.api.deps import deps
from agentfield_arq.api.params import headers
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity, Lookup, Role
from agentfield_arq.kernel.errors import (
    ApiError,
    Forbidden,
    RateLimited,
    Unauthorized,
    Unavailable,
)


class Access(enum.Enum):
    """The least a request needs to reach an operation."""

    PUBLIC = "public"  # no key: health and this document
    REPORT = "report"  # a valid key or none: the endpoint asks for proof (agents' callbacks)
    CALLER = "caller"  # any valid key (a caller's, an agent's or an admin's)
    AGENT = "agent"  # an agent key or an admin key
    ADMIN = "admin"  # an admin key


# Each role may do all that the roles below it may.
_RANK = {Role.CALLER: 1, Role.AGENT: 2, Role.ADMIN: 3}
_NEEDED = {Access.PUBLIC: 0, Access.REPORT: 0, Access.CALLER: 1, Access.AGENT: 2, Access.ADMIN: 3}
# What the access check itself can answer, listed in the OpenAPI document of each operation.
ERRORS: Mapping[Access, tuple[type[ApiError], ...]] = {
    Access.PUBLIC: (),
    Access.REPORT: (Unauthorized, RateLimited, Unavailable),
    Access.CALLER: (Unauthorized, RateLimited, Unavailable),
    Access.AGENT: (Unauthorized, Forbidden, RateLimited, Unavailable),
    Access.ADMIN: (Unauthorized, Forbidden, RateLimited, Unavailable),
}
MISSING = "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"


def allows(role: Role, access: Access) -> bool:
    """Whether a key of `role` may reach an operation of `access`."""
    return _RANK[role] >= _NEEDED[access]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, from `Authorization: Bearer` or else `X-API-Key`."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


async def authenticate(request: Request, access: Access) -> Identity | None:
    """The identity behind the request, if it may reach an operation of `access` (None: no
    key, where `access` lets a request without one through)."""
    d = deps(request)
    if not d.settings.auth:
        return ANONYMOUS_ADMIN
    plain = presented_key(headers(request))
    if plain is None:
        if access is Access.REPORT:
            return None
        raise Unauthorized(MISSING)
    found = await d.credentials.lookup(plain)
    if found is Lookup.UNKNOWN:
        raise Unauthorized("the API key is unknown or revoked")
    if found is Lookup.LIMITED:
        raise RateLimited(
            f"the key sent more than {d.settings.key_rate_limit} requests this second"
        )
    assert isinstance(found, Identity)
    if not allows(found.role, access):
        raise Forbidden(f"a {found.role} key may not {request.method} {request.url.path[:200]}")
    return found


def identity(request: Request) -> Identity:
    """The identity `authenticate` found for this request (of an operation needing a key)."""
    found: Identity = request.scope["auth"]
    return found


def identity_if_any(request: Request) -> Identity | None:
    """The identity of a request that may come without a key (`Access.REPORT`)."""
    found: Identity | None = request.scope.get("auth")
    return found
