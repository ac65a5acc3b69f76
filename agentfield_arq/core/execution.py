"""Submitting executions and applying agents' reports: the rules, independent of HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Mapping

import msgspec

from agentfield_arq.core import webhooks
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.keys import own_run_id, safe_id
from agentfield_arq.core.lineage import Parent
from agentfield_arq.core.store import ExecutionStore, NewExecution, Outcome, Transition
from agentfield_arq.kernel.codec import canonical_json, encode, now_ms, rfc3339
from agentfield_arq.kernel.errors import (
    ExecutionExpired,
    ExecutionNotFound,
    InvalidRequest,
    InvalidTransition,
    InvalidWebhook,
    SyncTimeout,
)
from agentfield_arq.kernel.models import CallbackRequest, ExecuteRequest, Execution, Submitted
from agentfield_arq.kernel.status import TERMINAL_STATUSES, Status, normalise_status
from agentfield_arq.kernel.targets import parse_target

logger = logging.getLogger(__name__)
_doc_decoder = msgspec.json.Decoder(Execution[msgspec.Raw])

_HEADER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Session and actor ids are the caller's own (an e-mail address, say): any printable text.
_HEADER_TEXT = re.compile(r"[\x20-\x7e]{1,256}")
PARENT_HEADER = "x-parent-execution-id"
# Request headers kept on the execution and forwarded to the agent, with their hash field names.
FORWARDED_HEADERS = {
    PARENT_HEADER: "parent_execution_id",
    "x-session-id": "session_id",
    "x-actor-id": "actor_id",
}
MAX_ERROR_CHARS = 2000
CANCELLED_ERROR = "cancelled by request"
MAX_DURATION_MS = 2**31 - 1
# A progress report is shown in every read of the execution: kept small.
MAX_PROGRESS_BYTES = 4096


def _header_id(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None or value == "":
        return None
    if name in ("x-session-id", "x-actor-id"):
        if not _HEADER_TEXT.fullmatch(value):
            raise InvalidRequest(f"header {name}: at most 256 printable ASCII characters")
    elif not _HEADER_ID.fullmatch(value):
        raise InvalidRequest(f"header {name}: at most 64 characters of [A-Za-z0-9_.:-]")
    return value


class Accepted(msgspec.Struct, kw_only=True):
    """What a submission got: the 202 answer, and whether it replays the first execution of
    its Idempotency-Key (`Idempotent-Replayed: true`)."""

    submitted: Submitted
    replayed: bool = False


async def submit(
    store: ExecutionStore,
    target: str,
    request: ExecuteRequest,
    headers: Mapping[str, str],
    execution_id: str | None = None,
    owner: Identity = ANONYMOUS_ADMIN,
) -> Submitted:
    """Validate, store and enqueue one execution; durable in Redis when this returns.

    A caller that must watch the execution before it exists passes a fresh
    `store.new_execution_id()`.
    The execution remembers the id of the key that submitted it (`owner`); a key other than an
    admin's may have `key_max_active` executions not yet ended.
    """
    return (await accept(store, target, request, headers, execution_id, owner=owner)).submitted


async def accept(
    store: ExecutionStore,
    target: str,
    request: ExecuteRequest,
    headers: Mapping[str, str],
    execution_id: str | None = None,
    traceparent: str | None = None,
    owner: Identity = ANONYMOUS_ADMIN,
    parent_store: ExecutionStore | None = None,
) -> Accepted:
    """`submit`, honouring an `Idempotency-Key` header: the same request with the same key
    within `AGENTFIELD_ARQ_IDEMPOTENCY_TTL_S` answers the first execution (nothing is written);
    another request with it is IdempotencyKeyReused. Checked in create.lua, atomically.
    Idempotency keys are `owner`'s own (named with its key id): two callers' keys never meet.
    `traceparent` is kept on the execution and passed on at each hop (core/tracing.py).
    `parent_store` holds the parent (`X-Parent-Execution-ID`) when it is another Redis than
    `store` (core/lineage.py)."""
    node_id, name = parse_target(target)
    key = _idempotency_key(headers)
    created = now_ms()
    execution_id = execution_id or store.new_execution_id(created)
    run_id = (
        _header_id(headers, "x-run-id")
        or _header_id(headers, "x-workflow-id")
        or own_run_id(execution_id)
    )
    fields = {
        "run_id": run_id,
        "target": target,
        "node_id": node_id,
        "name": name,
        "created_ms": str(created),
        "owner": owner.key_id,
    }
    if request.context is not None:
        fields["context"] = encode(request.context).decode()
    if request.timeout_s is not None:  # > 0 (the body's schema); capped when the call is made
        fields["timeout_s"] = repr(float(request.timeout_s))
    for header, field in FORWARDED_HEADERS.items():
        value = _header_id(headers, header)
        if value is not None:
            fields[field] = value
    if traceparent is not None:
        fields["traceparent"] = traceparent
    webhook_error = _register_webhook(request.webhook, fields)
    new = NewExecution(
        execution_id=execution_id,
        node_id=node_id,
        name=name,
        enqueue_ms=created,
        deadline_ms=created + int(store.settings.execution_deadline_s * 1000),
        fields=fields,
        input=encode(request.input),
        owner=owner.key_id,
        webhook_secret=fields.pop("webhook_secret", ""),
        max_active=0 if owner.is_admin else store.settings.key_max_active,
        owner_listed=not owner.is_admin,
        queue_if_unavailable=request.queue_if_unavailable,
    )
    if key is not None:
        new.idempotency_key = hashlib.sha256(f"{owner.key_id}\n{key}".encode()).hexdigest()
        new.request_digest = _request_digest(target, request, headers)
    # As create.lua's keys of a parent: an id that cannot be an execution's names none.
    parent_id = fields.get("parent_execution_id")
    parent = None
    if parent_store is not None and parent_id is not None and safe_id(parent_id):
        parent = Parent(parent_store, parent_id)
    parent_run = await parent.check() if parent is not None else None
    made = await store.create(new)
    if made.replayed_id is not None:
        logger.info("replayed execution_id=%s for its idempotency key", made.replayed_id)
        return Accepted(submitted=await _replayed(store, made.replayed_id), replayed=True)
    if parent is not None:
        await parent.adopt(store, execution_id, same_run=parent_run == run_id)
    logger.info("queued execution_id=%s target=%s run_id=%s", execution_id, target, run_id)
    submitted = Submitted(
        execution_id=execution_id,
        run_id=run_id,
        workflow_id=run_id,
        status=Status.QUEUED,
        target=target,
        type=made.kind,
        created_at=rfc3339(created),
        enqueued_at=rfc3339(created),
        webhook_registered="webhook_url" in fields,
        webhook_error=msgspec.UNSET if webhook_error is None else webhook_error,
    )
    return Accepted(submitted=submitted)


def _idempotency_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("idempotency-key")
    if value is None or value == "":
        return None
    if not _HEADER_TEXT.fullmatch(value):
        raise InvalidRequest("header Idempotency-Key: at most 256 printable ASCII characters")
    return value


def _request_digest(target: str, request: ExecuteRequest, headers: Mapping[str, str]) -> str:
    """What makes two requests "the same" for an Idempotency-Key: the target, the body (keys
    sorted) and the headers that shape the execution."""
    shaping = {h: headers.get(h, "") for h in ("x-run-id", "x-workflow-id", *FORWARDED_HEADERS)}
    body = msgspec.json.encode([target, _decoded(request), shaping], order="sorted")
    return hashlib.sha256(body).hexdigest()


def _decoded(request: ExecuteRequest) -> ExecuteRequest:
    """`request` with its input decoded, when it came as bytes (`ExecuteBody`), so that the
    digest sorts the input's keys too."""
    if not isinstance(request.input, msgspec.Raw):
        return request
    fields = msgspec.structs.asdict(request)
    fields["input"] = msgspec.json.decode(request.input)
    return ExecuteRequest(**fields)


async def _replayed(store: ExecutionStore, execution_id: str) -> Submitted:
    """The 202 answer of an execution made earlier, as it stands now."""
    raw = await store.get_doc(execution_id)
    if raw is None:
        raise ExecutionExpired(
            f"execution '{execution_id}', the first of this Idempotency-Key, has expired"
        )
    doc = _doc_decoder.decode(raw)
    return Submitted(
        execution_id=doc.execution_id,
        run_id=doc.run_id,
        workflow_id=doc.run_id,
        status=doc.status,
        target=doc.target,
        type=doc.type,
        created_at=doc.created_at,
        enqueued_at=doc.created_at,
        webhook_registered=doc.webhook_registered,
    )


def _register_webhook(block: object, fields: dict[str, str]) -> str | None:
    """Add a valid webhook to the record's fields; return why an invalid one was not added
    (an invalid webhook does not reject the execution)."""
    if block is None:
        return None
    try:
        spec = webhooks.validate(block)
    except InvalidWebhook as exc:
        return str(exc)
    fields["webhook_url"] = spec.url
    fields["webhook_headers"] = encode(spec.headers).decode()
    notices = sorted(set(spec.events) - {"completed"})
    if notices:
        fields["webhook_notices"] = ",".join(notices)
    if spec.secret:
        fields["webhook_secret"] = spec.secret
    return None


async def execute_and_wait(
    store: ExecutionStore,
    completions: Completions,
    target: str,
    request: ExecuteRequest,
    headers: Mapping[str, str],
    traceparent: str | None = None,
    owner: Identity = ANONYMOUS_ADMIN,
    execution_id: str | None = None,
    parent_store: ExecutionStore | None = None,
) -> tuple[Accepted, Execution[msgspec.Raw]]:
    """Submit (see `accept`, `execution_id` and `parent_store` included) and wait for the
    terminal document, whichever replica or worker sees the end; a replayed Idempotency-Key
    waits for its first execution.

    Raises SyncTimeout (with the ids to poll) at the sync limit; the execution carries on.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + store.settings.sync_timeout_s
    execution_id = execution_id or store.new_execution_id()
    # Watched before it exists, so that its end cannot come before the watch: no first read.
    async with completions.watch(execution_id) as finished:
        accepted = await accept(
            store,
            target,
            request,
            headers,
            execution_id,
            traceparent=traceparent,
            owner=owner,
            parent_store=parent_store,
        )
        submitted = accepted.submitted
        if accepted.replayed:
            view = await wait_for_end(
                store, completions, submitted.execution_id, max(deadline - loop.time(), 0)
            )
        else:
            await _until(finished, deadline - loop.time())
            view = await store.get_view(execution_id)
    doc = _doc_decoder.decode(view) if view else None
    if doc is not None and doc.status in TERMINAL_STATUSES:
        return accepted, doc
    raise SyncTimeout(
        "execution did not finish within the sync limit; it carries on and can be polled",
        execution_id=submitted.execution_id,
        run_id=submitted.run_id,
        status=doc.status if doc else Status.QUEUED,
    )


async def wait_for_end(
    store: ExecutionStore,
    completions: Completions,
    execution_id: str,
    wait_s: float,
    owner: Identity = ANONYMOUS_ADMIN,
) -> bytes | None:
    """The execution's view once it is terminal, or as it stands after `wait_s`; None if it
    does not exist or is not `owner`'s (every read goes through the ownership check). Woken
    by the lifecycle stream, or by its recheck (core/completions.py)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    async with completions.watch(execution_id) as finished:
        # An end before the watch is seen by this read, one after it wakes the watch.
        view = await store.get_view(execution_id, owner)
        if view is None or _doc_decoder.decode(view).status in TERMINAL_STATUSES:
            return view
        await _until(finished, deadline - loop.time())
        return await store.get_view(execution_id, owner)


async def _until(finished: asyncio.Future[None], wait_s: float) -> None:
    """Wait for `finished` (this waiter's own, from `Completions.watch`), at most `wait_s`
    seconds: one timer resolves it at the limit. A sync waiter holds this for its whole wait,
    and a timeout scope (its object, its timer and the cancellation it arms) was 0.5 KB of each
    waiter's memory (bench/waiters.py, tracemalloc); the caller reads the status either way."""
    timer = asyncio.get_running_loop().call_later(max(wait_s, 0), _resolve, finished)
    try:
        await finished
    finally:
        timer.cancel()


def _resolve(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


async def apply_callback(
    store: ExecutionStore, execution_id: str, report: CallbackRequest
) -> bytes:
    """Apply an agent's status report; returns the execution's status document."""
    status = normalise_status(report.status)
    if status is None:
        raise InvalidRequest(f"status: unknown status '{report.status[:64]}'")
    now = now_ms()
    if status in TERMINAL_STATUSES:
        error = report.error or report.error_message
        if status is not Status.SUCCEEDED and not error:
            error = f"agent reported {status}"
        transition = await store.finish(
            execution_id,
            status,
            rfc3339(now),
            now,
            error=truncate(error) if error else None,
            result=_result_of(report) if status is Status.SUCCEEDED else None,
            duration_ms=_duration(report.duration_ms),
            want_doc=True,
        )
    else:
        if report.progress is not None and len(encode(report.progress)) > MAX_PROGRESS_BYTES:
            raise InvalidRequest(f"progress: at most {MAX_PROGRESS_BYTES} bytes of JSON")
        message = truncate(report.message) if isinstance(report.message, str) else None
        transition = await store.progress(
            execution_id, status, rfc3339(now), now, report.progress, message
        )
    doc = _settled(execution_id, status, transition)
    logger.info("callback execution_id=%s status=%s", execution_id, status)
    return doc


async def cancel(
    store: ExecutionStore,
    execution_id: str,
    reason: str | None = None,
    owner: Identity = ANONYMOUS_ADMIN,
) -> bytes:
    """Cancel an execution that has not ended; cancelling a cancelled one is a no-op. The
    reason, when given, is the execution's error. Another key's execution (unless the key is
    an admin's) is not found.

    The same step queues a worker job (`Runner.tell_agent`) that calls the agent's cancel route
    and cancels the execution's descendants; a worker already calling the agent finishes its
    call, but its outcome is discarded.
    """
    if not await store.visible(execution_id, owner):
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
    now = now_ms()
    error = truncate(reason) if reason else CANCELLED_ERROR
    transition = await store.finish(
        execution_id, Status.CANCELLED, rfc3339(now), now, error=error, want_doc=True
    )
    logger.info("cancel execution_id=%s: %s (%s)", execution_id, transition.outcome, error)
    return _settled(execution_id, Status.CANCELLED, transition)


def _settled(execution_id: str, status: str, transition: Transition) -> bytes:
    if transition.outcome is Outcome.MISSING:
        raise ExecutionNotFound(f"execution '{execution_id}' not found")
    if transition.doc is None:
        raise InvalidTransition(
            f"execution '{execution_id}' is {transition.status}; cannot change it to {status}",
            status=transition.status or "",
        )
    return transition.doc


def _result_of(report: CallbackRequest) -> bytes:
    """A succeeded report without a result (or with `null`) succeeded with a null result."""
    return b"null" if report.result is msgspec.UNSET else canonical_json(bytes(report.result))


def _duration(value: float | None) -> int | None:
    """An agent's own measure, if plausible (0 to about 24 days); else the control plane's."""
    if value is None or not 0 <= value <= MAX_DURATION_MS:
        return None
    return int(value)


def truncate(text: str) -> str:
    """Cap an error message so that records stay small."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
