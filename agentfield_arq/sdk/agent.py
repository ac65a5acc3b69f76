"""Writing agents as AgentField teaches, against agentfield-arq:

    from agentfield_arq import Agent

    app = Agent(node_id="finance", version="1.0.0")

    @app.reasoner()
    async def deep_analysis(quarter: str) -> dict:
        return {"quarter": quarter, "revenue_growth_pct": 12.4}

    if __name__ == "__main__":
        app.run()

The control plane's URL is the `server_url` argument, else `$AGENTFIELD_SERVER` (as in
AgentField), else http://127.0.0.1:8080. The agent listens on `$HOST`/`$PORT` when set (default
127.0.0.1 and any free port) and registers the URL it really listens on, or `callback_url` /
`$AGENT_CALLBACK_URL` when the control plane must reach it by another name. Its API key (an
agent key owning its node id) is `api_key`, else `$AGENTFIELD_API_KEY`, as in AgentField.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, overload

import httpx
import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from agentfield_arq.client.answers import raise_for
from agentfield_arq.client.clients import AsyncClient, resolve_api_key, resolve_server_url
from agentfield_arq.kernel import errors
from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.models import (
    ApprovalRequest,
    CallbackRequest,
    NodeRegistration,
    NoteRequest,
)
from agentfield_arq.kernel.status import Status, TargetKind
from agentfield_arq.kernel.targets import parse_target
from agentfield_arq.sdk.context import current
from agentfield_arq.sdk.endpoint import advertised_url, create_app, listen
from agentfield_arq.sdk.memory import Memory
from agentfield_arq.sdk.parameters import Signatures, Target, bind, describe
from agentfield_arq.sdk.pause import APPROVAL_PATH, ApprovalResult, Pauses
from agentfield_arq.sdk.presence import Presence
from agentfield_arq.sdk.reporter import MAX_RESULT_BYTES, Reporter

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Resending a submission is safe only when it never left this process (connection refused):
# that much patience covers a control plane that is restarting.
SUBMIT_PATIENCE_S = 30.0
CONTROL_PLANE_TIMEOUT_S = 10.0
# Each request to the control plane is bounded by CONTROL_PLANE_TIMEOUT_S once it has a
# connection; waiting for one of the pool's is not a failure: with hundreds of reasoners
# ending at once, a report that gave up on the pool and retried went to the back of it again
# (seen as a storm of PoolTimeout retries while the control plane was busy).
CONTROL_PLANE_TIMEOUT = httpx.Timeout(CONTROL_PLANE_TIMEOUT_S, pool=None)
# Ten times the control plane's default cap on a submitted body, so that raising that cap rarely
# needs raising this one; a bigger input is refused (413) before it is read whole.
MAX_INPUT_BYTES = 10 * 1_048_576


class Agent:
    """One agent node: its reasoners and skills, its HTTP server, and `call` to other nodes."""

    def __init__(
        self,
        node_id: str,
        version: str = "0.0.0",
        server_url: str | None = None,
        *,
        api_key: str | None = None,
        callback_url: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        heartbeat_interval_s: float = 5.0,
        shutdown_timeout_s: float = 30.0,
        call_timeout_s: float | None = None,
        max_input_bytes: int = MAX_INPUT_BYTES,
        max_result_bytes: int = MAX_RESULT_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            parse_target(f"{node_id}.x")
        except errors.InvalidTarget as exc:
            raise ValueError(f"node_id '{node_id}' cannot name targets: {exc}") from exc
        self.node_id = node_id
        self.version = version
        # This process's own id: registering under a new one tells the control plane that the
        # node restarted, so that what it accepted and never reported is dispatched again.
        self.instance_id = uuid.uuid4().hex
        self.server_url = resolve_server_url(server_url)
        # An agent key (`keys create --role agent`), else $AGENTFIELD_API_KEY as AgentField's.
        self.api_key = resolve_api_key(api_key)
        self.callback_url = callback_url or os.environ.get("AGENT_CALLBACK_URL") or None
        # What registration announces: the callback URL, or the address `serve` really bound.
        self.base_url = self.callback_url
        self.description = description
        self.tags = list(tags)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.call_timeout_s = call_timeout_s
        self.max_input_bytes = max_input_bytes
        self.targets: dict[str, Target] = {}
        self.stopping = False
        self._transport = transport
        self._http = self._new_http()
        self.client = AsyncClient(self.server_url, api_key=self.api_key, transport=transport)
        self.reporter = Reporter(self._http, max_result_bytes=max_result_bytes)
        self.pauses = Pauses()
        self._notes: set[asyncio.Task[None]] = set()
        self._signatures = Signatures(node_id, self.targets, lambda: self._http)
        self._asgi: Starlette | None = None

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server_url,
            timeout=CONTROL_PLANE_TIMEOUT,
            headers={
                "User-Agent": "agentfield-arq-agent",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
            transport=self._transport,
        )

    # ------------------------------------------------------------------ declaring targets

    @overload
    def reasoner(self, func: F, /) -> F: ...
    @overload
    def reasoner(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        path: str | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[F], F]: ...
    def reasoner(
        self,
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        path: str | None = None,
        tags: Sequence[str] = (),
    ) -> F | Callable[[F], F]:
        """Declare a reasoner: run in the background and reported on the callback route when the
        control plane asks (it always does). Use bare or with `name=`, `path=`, `tags=`."""
        return self._declare(TargetKind.REASONER, func, name, path, tags)

    @overload
    def skill(self, func: F, /) -> F: ...
    @overload
    def skill(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        path: str | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[F], F]: ...
    def skill(
        self,
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        path: str | None = None,
        tags: Sequence[str] = (),
    ) -> F | Callable[[F], F]:
        """Declare a skill: always answered inline. Use bare or with `name=`, `path=`, `tags=`."""
        return self._declare(TargetKind.SKILL, func, name, path, tags)

    def _declare(
        self,
        kind: TargetKind,
        func: F | None,
        name: str | None,
        path: str | None,
        tags: Sequence[str],
    ) -> F | Callable[[F], F]:
        def decorate(fn: F) -> F:
            target_name = name or fn.__name__
            try:
                parse_target(f"{self.node_id}.{target_name}")
            except errors.InvalidTarget as exc:
                raise ValueError(f"{kind} name '{target_name}' is not usable: {exc}") from exc
            if target_name in self.targets:
                raise ValueError(f"node '{self.node_id}' already has a target '{target_name}'")
            if path is not None and not path.startswith("/"):
                raise ValueError(f"{kind} '{target_name}': path must start with '/'")
            self.targets[target_name] = describe(
                fn, name=target_name, kind=kind, tags=tuple(tags), path=path
            )
            return fn

        return decorate(func) if func is not None else decorate

    def registration(self) -> dict[str, Any]:
        """The node record sent to `POST /api/v1/nodes/register` (AgentField's shape)."""
        specs = [target.spec() for target in self.targets.values()]
        kinds = [target.kind for target in self.targets.values()]
        record = NodeRegistration(
            id=self.node_id,
            version=self.version,
            base_url=self.base_url or "",
            reasoners=[s for s, k in zip(specs, kinds, strict=True) if k is TargetKind.REASONER],
            skills=[s for s, k in zip(specs, kinds, strict=True) if k is TargetKind.SKILL],
            lifecycle_status="ready",
            instance_id=self.instance_id,
            metadata={"description": self.description, "tags": self.tags, "sdk": "agentfield-arq"},
        )
        value: dict[str, Any] = msgspec.to_builtins(record)
        return value

    # ------------------------------------------------------------------ calling other nodes

    async def call(self, target: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run `node_id.name` with `args` and `kwargs` as its input and return its result as it
        returned it. Positional arguments take the target's parameter names in order, read
        from this agent's own declaration or from the node's registration (its input schema);
        too many, or one given twice, is a TypeError, as for a local call.

        Inside a reasoner or skill, the new execution joins the current run as a child of the
        current execution. Waits share one batch-status poll loop. Raises ExecutionFailed (or
        ExecutionCancelled / ExecutionTimedOut), carrying the execution id and its error.
        Unlike AgentField's SDK, a result that is an object with a `result` key is not unwrapped:
        the control plane stores results without an envelope, so there is nothing to unwrap.
        """
        if args:
            kwargs = bind(target, args, kwargs, await self._signatures.names(target))
        context = current()
        headers = context.child_headers() if context else {}
        execution_id = await self._submit(target, kwargs, headers)
        return await self.client.result(execution_id, self.call_timeout_s)

    # ------------------------------------------------------------------ memory, notes, pauses

    @property
    def memory(self) -> Memory:
        """The control plane's memory, in the scopes of the execution being served (see
        `agentfield_arq.sdk.memory`)."""
        return Memory(self._http, self.node_id)

    def note(self, message: str, tags: Sequence[str] = ()) -> None:
        """Write a note on the execution being served, in the background (as AgentField's
        `app.note`); outside a reasoner or skill there is nothing to note on."""
        context = current()
        if context is None or not context.execution_id:
            logger.warning("app.note outside an execution: %s", message[:100])
            return
        body = NoteRequest(message=message, tags=list(tags), agent_node_id=self.node_id)
        task = asyncio.get_running_loop().create_task(self._send_note(context.execution_id, body))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def _send_note(self, execution_id: str, note: NoteRequest) -> None:
        headers = {"Content-Type": "application/json", "X-Execution-ID": execution_id}
        try:
            answer = await self._http.post(
                "/api/v1/executions/note", content=msgspec.json.encode(note), headers=headers
            )
            raise_for(answer)
        except (httpx.HTTPError, errors.ApiError) as exc:
            logger.warning("note on execution_id=%s not stored: %s", execution_id, exc)

    async def pause(
        self,
        approval_request_id: str,
        approval_request_url: str = "",
        expires_in_hours: float = 72,
        timeout: float | None = None,  # noqa: ASYNC109  (AgentField's name for it)
        execution_id: str | None = None,
    ) -> ApprovalResult:
        """Wait for a person to approve the execution being served (AgentField's `app.pause`):
        it is `waiting` meanwhile, holding no worker. Returns the decision (approved or
        rejected), or `expired` after `timeout` (default: `expires_in_hours`)."""
        context = current()
        execution_id = execution_id or (context.execution_id if context else None)
        if not execution_id:
            raise errors.ClientError("app.pause needs an execution: call it inside a reasoner")
        if not self.base_url:
            raise errors.ClientError("app.pause needs a served agent, which the decision reaches")
        request = ApprovalRequest(
            approval_request_id=approval_request_id,
            approval_request_url=approval_request_url,
            callback_url=self.base_url.rstrip("/") + APPROVAL_PATH,
            expires_in_hours=expires_in_hours,
        )
        wait_s = expires_in_hours * 3600 if timeout is None else timeout
        return await self.pauses.pause(self._http, self.node_id, execution_id, request, wait_s)

    async def progress(self, progress: Any, message: str | None = None) -> bool:
        """Report how far the current execution has come (`progress`: a percentage, or any
        JSON) with an optional message; it shows in the execution's reads and events, and in
        the webhooks of callers who asked for `progress`. Best effort: one attempt, True when
        the control plane took it; False outside a reasoner or skill, or when it did not."""
        context = current()
        if context is None or context.execution_id is None:
            return False
        body = msgspec.json.encode(
            CallbackRequest(status=Status.RUNNING, progress=progress, message=message)
        )
        status = await self.reporter.report(
            context.execution_id,
            body,
            attempts=1,
            token=context.callback_token,
            headers=context.trace_headers(),
        )
        return status is not None and 200 <= status < 300

    async def _submit(self, target: str, kwargs: dict[str, Any], headers: dict[str, str]) -> str:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SUBMIT_PATIENCE_S
        attempt = 0
        while True:
            attempt += 1
            try:
                submitted = await self.client.execute_async(target, kwargs, headers=headers)
            except errors.ControlPlaneUnreachable as exc:
                if exc.request_sent or loop.time() >= give_up:
                    raise
                logger.warning("submitting %s: %s; retrying", target, exc)
                await asyncio.sleep(backoff_s(attempt, 0.2, 2.0))
                continue
            logger.debug("called %s as execution_id=%s", target, submitted.execution_id)
            return submitted.execution_id

    # ------------------------------------------------------------------ serving

    @property
    def asgi(self) -> Starlette:
        """The agent's ASGI app (built on first use)."""
        if self._asgi is None:
            self._asgi = create_app(self, self._lifespan)
        return self._asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An Agent is itself an ASGI app, e.g. for `uvicorn module:app` with a callback URL."""
        await self.asgi(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.stopping = False
        if self._http.is_closed:  # served before: the last shutdown closed the clients
            self._http = self.reporter.http = self._new_http()
            self.client = AsyncClient(self.server_url, transport=self._transport)
        presence = Presence(self._http, self.node_id, self.registration, self.heartbeat_interval_s)
        task = None
        if self.base_url:
            task = asyncio.create_task(presence.run(), name=f"presence {self.node_id}")
        else:
            logger.warning("node %s has no callback URL, so it does not register", self.node_id)
        try:
            yield
        finally:
            self.stopping = True
            await self.reporter.drain(self.shutdown_timeout_s)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await presence.goodbye()
            await self.client.aclose()
            await self._http.aclose()

    def serve(
        self, host: str | None = None, port: int | None = None, *, log_level: str = "info"
    ) -> None:
        """Serve until SIGINT or SIGTERM; then finish running reasoners and say goodbye."""
        if not logging.getLogger().handlers:  # a program's entry point: give our logs a home
            logging.basicConfig(
                level=log_level.upper(),
                format=f"%(asctime)s %(levelname)s [{self.node_id}] %(name)s: %(message)s",
            )
            logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns ours
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self.serve_async(host, port))

    run = serve  # AgentField's name for it

    async def serve_async(self, host: str | None = None, port: int | None = None) -> None:
        """Serve on the running loop: `$HOST`/`$PORT` unless given (default 127.0.0.1, any free
        port); the socket is bound first, so that registration announces the real port."""
        host = host or os.environ.get("HOST") or "127.0.0.1"
        port = int(os.environ.get("PORT", "0")) if port is None else port
        sock = listen(host, port)
        self.base_url = advertised_url(self.callback_url, host, sock.getsockname()[1])
        config = uvicorn.Config(
            self.asgi, log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        try:
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            sock.close()
