"""The one place where errors become HTTP statuses and `{"error", "code"}` bodies."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq import errors
from agentfield_arq.codec import encode

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[errors.ApiError], int]] = [
    (errors.InvalidRequest, 400),
    (errors.NotFound, 404),
    (errors.InvalidTransition, 409),
    (errors.PayloadTooLarge, 413),
    (errors.NotSupported, 501),
    (errors.Unavailable, 503),
]
CODE_BY_HTTP_STATUS = {404: "not_found", 405: "method_not_allowed"}


def error_response(http_status: int, code: str, message: str, **extra: object) -> Response:
    """A JSON error body in AgentField's shape plus a machine-readable code."""
    return Response(
        encode({"error": message, "code": code, **extra}),
        status_code=http_status,
        media_type="application/json",
    )


async def api_error(request: Request, exc: Exception) -> Response:
    """Map the core's error tree to statuses."""
    assert isinstance(exc, errors.ApiError)
    status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 500)
    return error_response(status, exc.code, exc.message)


async def redis_error(request: Request, exc: Exception) -> Response:
    """Redis did not answer: the request may be retried."""
    logger.error("redis error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, errors.Unavailable.code, "the state store (Redis) is unavailable")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in our error shape."""
    assert isinstance(exc, HTTPException)
    code = CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


HANDLERS = {
    errors.ApiError: api_error,
    RedisError: redis_error,
    HTTPException: http_error,
}
