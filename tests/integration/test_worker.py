"""The worker adapter in-process, as arq's own tests/conftest.py drives a worker: a real
`WakingWorker` in burst mode against the session's Redis, returning once the queue is empty
(deferred retries included), with the agent and the webhook receiver behind
`httpx.MockTransport`. Executions are submitted as the API submits them.

The sweep's cron may enqueue itself during a burst (when one of its seconds is near), and the
burst then runs it too; it changes nothing here, so the tests count agent calls and retries,
not completed jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import (
    WakingWorker,
    arq_deserialize,
    arq_serialize,
    sweep_cron_name,
)
from agentfield_arq.core.connection import connect
from agentfield_arq.core.execution import accept, apply_callback, cancel, submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import webhook_id
from agentfield_arq.core.roster import Roster
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.slots import NodeSlots
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import now_ms
from agentfield_arq.kernel.errors import InvalidTransition
from agentfield_arq.kernel.models import (
    CallbackRequest,
    ExecuteRequest,
    NodeRegistration,
    TargetSpec,
)
from agentfield_arq.kernel.signing import verify
from agentfield_arq.ops.embedded import EmbeddedRedis
from agentfield_arq.workers.worker import create_worker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(20),
    # arq 0.28's Worker.close closes its pool with redis-py's deprecated close().
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
]

TARGET = "finance.deep_analysis"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)
SECRET = "s3cret"
HOOK = {"url": "https://hooks.example.com/in", "secret": SECRET}


class Scripted:
    """An agent or receiver giving its (status, JSON body) answers in turn, repeating the last
    one; records every request."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return httpx.Response(status, json=body)


@pytest.fixture
async def store(redis_client: Redis, settings: Settings) -> ExecutionStore:
    node = NodeRegistration(
        id="finance",
        base_url="http://finance.test:8001",
        reasoners=[TargetSpec(id="deep_analysis")],
    )
    await NodeRegistry(redis_client, settings).register(b'{"id": "finance"}', node)
    return ExecutionStore(redis_client, settings)


async def _submit(store: ExecutionStore, webhook: Any = None) -> str:
    request = ExecuteRequest(input={"quarter": "Q3"}, webhook=webhook)
    return (await submit(store, TARGET, request, {})).execution_id


def _worker(settings: Settings, agent: Handler, receiver: Handler | None = None) -> WakingWorker:
    """A burst worker whose agents and receivers are `agent` and `receiver`."""
    return create_worker(
        settings,
        burst=True,
        handle_signals=False,
        # Replace the guarded transports: hosts are never resolved.
        agent_transport=httpx.MockTransport(agent),
        webhook_transport=httpx.MockTransport(receiver or Scripted((200, {}))),
    )


async def _burst(
    settings: Settings, agent: Handler, receiver: Handler | None = None
) -> WakingWorker:
    """Run a worker until nothing is queued; returns it (closed) for its counters."""
    worker = _worker(settings, agent, receiver)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def _doc(store: ExecutionStore, execution_id: str) -> dict[str, Any]:
    view = await store.get_view(execution_id)
    assert view is not None, execution_id
    doc: dict[str, Any] = json.loads(view)
    return doc


async def test_an_agent_answering_200_inline_succeeds_the_execution_with_its_result(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((200, {"revenue": 42}))
    worker = await _burst(settings, agent)
    doc = await _doc(store, execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"revenue": 42})
    assert [r.headers["X-Execution-ID"] for r in agent.requests] == [execution_id]
    assert (worker.jobs_retried, worker.jobs_failed) == (0, 0)


async def test_an_agent_answering_4xx_fails_the_execution_at_once(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((422, {"detail": "quarter is required"}))
    worker = await _burst(settings, agent)
    doc = await _doc(store, execution_id)
    assert doc["status"] == "failed"
    assert doc["error"].startswith("agent answered 422")
    assert len(agent.requests) == 1
    assert worker.jobs_retried == 0


async def test_an_agent_answering_503_is_retried_as_a_new_job_after_a_backoff_until_it_succeeds(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((503, {"detail": "busy"}), (503, {"detail": "busy"}), (200, {"ok": True}))
    worker = await _burst(settings, agent)
    doc = await _doc(store, execution_id)
    assert (doc["status"], doc["result"]) == ("succeeded", {"ok": True})
    assert len(agent.requests) == 3
    assert worker.jobs_retried == 0  # arq retried nothing: each try was a job of its own


async def test_an_agent_answering_503_every_time_fails_the_execution_after_its_last_attempt(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((503, {"detail": "down"}))
    await _burst(settings, agent)
    doc = await _doc(store, execution_id)
    attempts = settings.agent_max_attempts
    assert doc["status"] == "failed"
    assert f"after {attempts} attempts" in doc["error"]
    assert len(agent.requests) == attempts


async def test_an_agent_answering_202_leaves_the_execution_running_and_frees_the_slot(
    store: ExecutionStore, settings: Settings, redis_client: Redis
) -> None:
    execution_id = await _submit(store)
    worker = await _burst(settings, Scripted((202, {"status": "processing"})))
    assert (await _doc(store, execution_id))["status"] == "running"
    phase = await redis_client.hget(store.keys.execution(execution_id), "phase")  # type: ignore[misc]  # redis-py's async stubs
    assert phase == b"awaiting_callback"
    assert worker.job_counter == 0
    # The run job is over: its record is gone and no worker holds its lock.
    assert await redis_client.exists(store.keys.arq_job(execution_id)) == 0
    assert await redis_client.exists(store.keys.arq_in_progress(execution_id)) == 0


@pytest.mark.parametrize(
    ("answer", "status"), [(200, "succeeded"), (422, "failed"), (202, "running")]
)
async def test_a_run_job_is_ended_by_the_step_that_records_the_answer_not_by_arqs_finish(
    store: ExecutionStore,
    settings: Settings,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    answer: int,
    status: str,
) -> None:
    finished: list[str] = []
    arq_finish = Worker.finish_job

    async def recorded(self: Worker, job_id: str, *args: Any) -> None:
        finished.append(job_id)
        await arq_finish(self, job_id, *args)

    monkeypatch.setattr(Worker, "finish_job", recorded)
    given_back: list[str] = []

    async def give_back(self: NodeSlots, node_id: str, execution_id: str) -> None:
        given_back.append(execution_id)

    monkeypatch.setattr(NodeSlots, "give_back", give_back)
    execution_id = await _submit(store)
    worker = await _burst(settings, Scripted((answer, {"revenue": 42})))
    assert (await _doc(store, execution_id))["status"] == status
    assert execution_id not in finished
    assert given_back == []  # the step freed the slot
    assert worker.settled == set()
    k = store.keys
    ended = (k.arq_job(execution_id), k.arq_in_progress(execution_id), k.arq_retry(execution_id))
    assert await redis_client.exists(*ended) == 0
    assert await redis_client.zscore(k.queue, execution_id) is None
    assert await redis_client.zcard(k.node_slots("finance")) == 0


async def test_a_finished_execution_has_its_webhook_delivered_by_a_delivery_job(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store, HOOK)
    receiver = Scripted((204, None))
    await _burst(settings, Scripted((200, {"revenue": 42})), receiver)
    doc = await _doc(store, execution_id)
    assert doc["webhook_status"] == "delivered"
    assert [e["status"] for e in doc["webhook_events"]] == ["delivered"]
    (delivery,) = receiver.requests
    assert str(delivery.url) == HOOK["url"]
    assert delivery.headers["webhook-id"] == webhook_id(execution_id)
    body = verify(delivery.content, delivery.headers, SECRET)
    assert (body["event"], body["execution_id"], body["result"]) == (
        "execution.completed",
        execution_id,
        {"revenue": 42},
    )


async def test_the_sweep_cron_job_times_out_an_execution_past_its_deadline(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((202, {"status": "processing"}))
    await _burst(settings, agent)
    assert (await _doc(store, execution_id))["status"] == "running"
    # Its deadline passes (as in test_webhooks: the record and the index say so).
    await store.redis.hset(store.keys.execution(execution_id), "deadline_ms", "0")  # type: ignore[misc]  # redis-py's async stubs
    await store.redis.zadd(store.keys.deadlines, {execution_id: 0})
    # What arq's cron does when the sweep is due: enqueue the job of the cron's name.
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=arq_serialize,
        job_deserializer=arq_deserialize,
        default_queue_name=store.keys.queue,
    )
    try:
        assert await pool.enqueue_job(sweep_cron_name(settings.key_prefix)) is not None
    finally:
        await pool.aclose()
    await _burst(settings, agent)
    doc = await _doc(store, execution_id)
    assert (doc["status"], doc["error"]) == ("timeout", "execution deadline exceeded")
    # The agent was invoked once, then told at its cancel route (by the job the timeout queued).
    assert [r.url.path for r in agent.requests] == [
        "/reasoners/deep_analysis",
        f"/_internal/executions/{execution_id}/cancel",
    ]


async def test_a_cancel_tells_the_agent_at_its_cancel_route_with_the_reason(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted(
        (202, {"status": "processing"}), (200, {"cancelled": True, "execution_id": execution_id})
    )
    await _burst(settings, agent)
    await cancel(store, execution_id, "the user closed the tab")
    await _burst(settings, agent)
    told = agent.requests[-1]
    assert told.url.path == f"/_internal/executions/{execution_id}/cancel"
    assert json.loads(told.content) == {"reason": "the user closed the tab", "status": "cancelled"}
    assert (await store.fields(execution_id))["agent_told"] == "cancelled"
    assert (await _doc(store, execution_id))["error"] == "the user closed the tab"


async def test_an_agent_that_cannot_be_told_is_recorded_and_the_cancel_stands(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    agent = Scripted((202, {"status": "processing"}), (404, {"detail": "Not Found"}))
    await _burst(settings, agent)
    await cancel(store, execution_id)
    await _burst(settings, agent)
    assert len(agent.requests) == 2  # one try: telling the agent is best-effort
    told = (await store.fields(execution_id))["agent_told"]
    assert told.startswith("agent answered 404")
    assert (await _doc(store, execution_id))["status"] == "cancelled"


async def test_a_queued_execution_cancelled_before_any_worker_took_it_calls_no_agent(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    await cancel(store, execution_id)
    agent = Scripted((202, {"status": "processing"}))
    await _burst(settings, agent)
    assert agent.requests == []


async def test_a_cancel_reaches_every_descendant_in_its_run_and_each_agent_is_told(
    store: ExecutionStore, settings: Settings
) -> None:
    parent = await _submit(store)
    agent = Scripted((202, {"status": "processing"}))
    await _burst(settings, agent)
    run_id = (await store.fields(parent))["run_id"]

    async def child_of(of: str) -> str:
        headers = {"x-run-id": run_id, "x-parent-execution-id": of}
        request = ExecuteRequest(input={"quarter": "Q3"})
        return (await submit(store, TARGET, request, headers)).execution_id

    child = await child_of(parent)
    grandchild = await child_of(child)
    elsewhere = (
        await submit(store, TARGET, ExecuteRequest(input={}), {"x-parent-execution-id": parent})
    ).execution_id  # names the parent but not its run: not its descendant
    await _burst(settings, agent)
    await cancel(store, parent, "budget exhausted")
    await _burst(settings, agent)
    for execution_id in (child, grandchild):
        doc = await _doc(store, execution_id)
        assert doc["status"] == "cancelled"
        assert "budget exhausted" in doc["error"]
    assert (await _doc(store, elsewhere))["status"] == "running"
    told = {r.url.path for r in agent.requests if r.url.path.endswith("/cancel")}
    assert told == {f"/_internal/executions/{i}/cancel" for i in (parent, child, grandchild)}


async def test_a_cancelled_parent_takes_no_new_children(store: ExecutionStore) -> None:
    parent = await _submit(store)
    run_id = (await store.fields(parent))["run_id"]
    await cancel(store, parent)
    headers = {"x-run-id": run_id, "x-parent-execution-id": parent}
    with pytest.raises(InvalidTransition, match="takes no new children"):
        await submit(store, TARGET, ExecuteRequest(input={}), headers)


def _crash(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("a bug of ours")


async def test_a_job_whose_code_crashes_ends_its_execution_failed_not_running(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store)
    worker = await _burst(settings, _crash)
    doc = await _doc(store, execution_id)
    assert (doc["status"], doc["error"]) == ("failed", "internal error: RuntimeError")
    assert (worker.jobs_failed, worker.jobs_retried) == (0, 0)


async def test_a_webhook_attempt_that_crashes_ends_the_delivery_dead_at_once(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store, HOOK)
    attempts: list[httpx.Request] = []

    def crash(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        return _crash(request)

    await _burst(settings, Scripted((200, {"revenue": 42})), crash)
    doc = await _doc(store, execution_id)
    assert doc["status"] == "succeeded"
    assert doc["webhook_status"] == "failed"
    assert [e["error_message"] for e in doc["webhook_events"]] == ["internal error: RuntimeError"]
    assert len(attempts) == 1


class Fleet:
    """Agents `hang` (holds every call until released) and `finance` (answers at once)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.finance_called = asyncio.Event()
        self.hanging = 0
        self.peak = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "hang.test":
            self.finance_called.set()
            return httpx.Response(200, json={"revenue": 42})
        self.hanging += 1
        self.peak = max(self.peak, self.hanging)
        try:
            await self.release.wait()
        finally:
            self.hanging -= 1
        return httpx.Response(200, json={"hung": True})


async def test_a_node_that_hangs_holds_at_most_its_cap_and_other_nodes_keep_flowing(
    store: ExecutionStore, settings: Settings, redis_client: Redis
) -> None:
    cap, slots = 2, 4
    settings = msgspec.structs.replace(
        settings,
        worker_concurrency=slots,
        node_max_in_flight=cap,
        node_wait_max_s=0.2,
        agent_timeout_s=10.0,
    )
    hang = NodeRegistration(
        id="hang", base_url="http://hang.test:8001", reasoners=[TargetSpec(id="wait")]
    )
    await NodeRegistry(redis_client, settings).register(b'{"id": "hang"}', hang)
    request = ExecuteRequest(input={})
    # Queued first, more than the worker has slots: without a cap they would take them all.
    hung = [(await submit(store, "hang.wait", request, {})).execution_id for _ in range(3 * slots)]
    legit = await _submit(store)
    fleet = Fleet()
    worker = _worker(settings, fleet)
    running = asyncio.create_task(worker.main())
    try:
        async with asyncio.timeout(10):
            await fleet.finance_called.wait()
        assert (fleet.hanging, fleet.peak) == (cap, cap)
        fleet.release.set()
        async with asyncio.timeout(15):
            await running
    finally:
        running.cancel()
        await worker.close()
    assert (await _doc(store, legit))["status"] == "succeeded"
    assert fleet.peak == cap
    for execution_id in hung:
        fields = await redis_client.hgetall(store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
        # Waiting for a slot spent no attempt: each was called once.
        assert (fields[b"status"], fields[b"attempt"]) == (b"succeeded", b"1")
    assert worker.jobs_failed == 0


async def test_a_caller_asking_for_started_and_progress_gets_each_notice_then_the_completion(
    store: ExecutionStore, settings: Settings
) -> None:
    hook = {**HOOK, "events": ["started", "progress"]}
    execution_id = await _submit(store, hook)
    receiver = Scripted((204, None))
    await _burst(settings, Scripted((202, {"status": "processing"})), receiver)
    for percent in (10, 20):  # one throttle bucket: one notice for both
        report = CallbackRequest(status="running", progress=percent, message=f"{percent}%")
        await apply_callback(store, execution_id, report)
    await _burst(settings, Scripted((202, {})), receiver)
    await apply_callback(store, execution_id, CallbackRequest(status="succeeded", progress=100))
    await _burst(settings, Scripted((202, {})), receiver)
    bodies = [verify(r.content, r.headers, SECRET) for r in receiver.requests]
    assert [b["event"] for b in bodies] == [
        "execution.started",
        "execution.progress",
        "execution.completed",
    ]
    assert (bodies[1]["progress"], bodies[1]["progress_message"]) == (20, "20%")
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 3
    assert ids[2] == webhook_id(execution_id)


async def test_a_caller_who_asked_for_nothing_gets_only_the_completion(
    store: ExecutionStore, settings: Settings
) -> None:
    execution_id = await _submit(store, HOOK)
    receiver = Scripted((204, None))
    await _burst(settings, Scripted((202, {})), receiver)
    await apply_callback(store, execution_id, CallbackRequest(status="running", progress=50))
    await apply_callback(store, execution_id, CallbackRequest(status="succeeded"))
    await _burst(settings, Scripted((202, {})), receiver)
    assert [verify(r.content, r.headers, SECRET)["event"] for r in receiver.requests] == [
        "execution.completed"
    ]


async def test_a_worker_counts_as_alive_while_it_polls_and_not_once_it_stops(
    store: ExecutionStore, settings: Settings, redis_client: Redis
) -> None:
    await _submit(store)
    roster = Roster(redis_client, store.keys)
    seen: list[int] = []

    async def agent(request: httpx.Request) -> httpx.Response:
        seen.append(await roster.alive(now_ms()))
        return httpx.Response(200, json={})

    await _burst(settings, agent)
    assert seen == [1]
    assert await roster.alive(now_ms()) == 0


async def test_the_callers_traceparent_reaches_the_agent_and_the_webhook(
    store: ExecutionStore, settings: Settings
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = ExecuteRequest(input={"quarter": "Q3"}, webhook=HOOK)
    accepted = await accept(store, TARGET, request, {}, traceparent=traceparent)
    agent, receiver = Scripted((200, {"ok": True})), Scripted((204, None))
    await _burst(settings, agent, receiver)
    assert (await _doc(store, accepted.submitted.execution_id))["status"] == "succeeded"
    assert [r.headers["traceparent"] for r in agent.requests] == [traceparent]
    assert [r.headers["traceparent"] for r in receiver.requests] == [traceparent]


async def test_the_worker_s_lock_is_sized_for_deliveries_not_for_the_longest_agent_call(
    settings: Settings,
) -> None:
    worker = create_worker(settings, burst=True, handle_signals=False)
    try:
        assert worker.in_progress_timeout_s == settings.lock_timeout_s
        assert settings.lock_timeout_s < settings.job_timeout_s
    finally:
        await worker.close()


async def test_a_worker_started_while_redis_is_away_waits_for_it_then_runs_what_is_queued(
    tmp_path: Path, settings: Settings
) -> None:
    # arq's start-up reads Redis before the poll loop that outlasts outages: without
    # WakingWorker.main trying it again, the worker process ended with a ConnectionError.
    server = EmbeddedRedis(tmp_path / "redis")
    late = msgspec.structs.replace(settings, redis_url=server.start())
    client = connect(late.redis_url)
    try:
        store = ExecutionStore(client, late)
        node = NodeRegistration(id="finance", base_url="http://finance.test:8001",
                                reasoners=[TargetSpec(id="deep_analysis")])  # fmt: skip
        await NodeRegistry(client, late).register(b'{"id": "finance"}', node)
        execution_id = await _submit(store)
        server.stop()  # the append-only file keeps the execution and its job
        agent = Scripted((200, {"ok": True}))
        worker = _worker(late, agent)
        running = asyncio.create_task(worker.main())
        try:
            async with asyncio.timeout(10):
                while worker.failed_starts < 2:
                    assert not running.done(), running
                    await asyncio.sleep(0.01)
            assert server.restart()
            await asyncio.wait_for(running, 15)
        finally:
            running.cancel()
            await worker.close()
        assert (await _doc(store, execution_id))["status"] == "succeeded"
        assert len(agent.requests) == 1
    finally:
        await client.aclose()
        server.stop()
