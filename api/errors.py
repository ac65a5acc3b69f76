"""Where the API's errors become answers: `{"error", "code"}` bodies (ErrorBody), with the
status of `kernel/errors.HTTP_STATUS`; Redis outages, Starlette's own errors and bugs too."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.kernel import errors
from agentfield_arq.kernel.codec import encode

logger = logging.getLogger(__name__)

CODE_BY_HTTP_STATUS = {404: "not_found", 405: "method_not_allowed"}
# RFC 6750: a 401 names the scheme that would have been accepted.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agentfield-arq"'}


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
    response = error_response(errors.http_status(exc), exc.code, exc.message, **exc.details)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    # An error about one execution (a sync timeout) names it in the headers too.
    for field, header in (("execution_id", "X-Execution-ID"), ("run_id", "X-Run-ID")):
        if field in exc.details:
            response.headers[header] = exc.details[field]
    if isinstance(exc, errors.Unauthorized):
        response.headers.update(CHALLENGE)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def redis_error(request: Request, exc: Exception) -> Response:
    """Redis did not answer (503: retry later), or refused a command (500: our bug)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        logger.error("redis unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            errors.http_status(errors.Unavailable),
            errors.Unavailable.code,
            "the state store (Redis) is unavailable",
        )
    return await internal_error(request, exc)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged once with its traceback, answered in our error shape (by
    the redis handler here, and by `api/edge.py` for every other exception)."""
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        errors.INTERNAL_STATUS, errors.ApiError.code, "internal error; see the API's log"
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in our error shape."""
    assert isinstance(exc, HTTPException)
    code = CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. the Allow header of a 405
    return response


HANDLERS = {
    errors.ApiError: api_error,
    RedisError: redis_error,
    HTTPException: http_error,
}
