"""One worker attempt (Runner.run) against a real Redis, with httpx.MockTransport as the agent:
each kind of answer the agent can give, what is tried again and what is not, and the guards
around claiming, handing back and settling."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.dispatch import CallbackProof
from agentfield_arq.core.execution import submit
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.runner import AGENT_ERROR_BODY_CHARS, Runner
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore, Outcome
from agentfield_arq.kernel.codec import now_ms, rfc3339
from agentfield_arq.kernel.errors import ExecutionNotFound
from agentfield_arq.kernel.models import ExecuteRequest, NodeRegistration, TargetSpec

pytestmark = pytest.mark.integration

BASE_URL = "http://finance.test:8001"
MAX_ATTEMPTS = 3
# The runner's limit on one whole agent call, in the tests that reach it.
TIME_LIMIT_S = 0.2
Answer = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Harness:
    """A registered node, its executions, and runners whose agent answers as a test says."""

    def __init__(self, redis: Redis, settings: Settings, nodes: NodeRegistry) -> None:
        self.redis = redis
        self.settings = settings
        self.nodes = nodes
        self.store = ExecutionStore(redis, settings)
        self.calls: list[httpx.Request] = []
        self._clients: list[httpx.AsyncClient] = []

    def runner(self, answer: Answer, **overrides: Any) -> Runner:
        """A Runner whose agent calls go to `answer`; `overrides` change its settings."""

        async def handle(request: httpx.Request) -> httpx.Response:
            self.calls.append(request)
            response = answer(request)
            return await response if inspect.isawaitable(response) else response

        settings = msgspec.structs.replace(self.settings, **overrides)
        http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        self._clients.append(http)
        return Runner(ExecutionStore(self.redis, settings), self.nodes, http, settings)

    async def submit(self, target: str = "finance.deep_analysis", **headers: str) -> str:
        """Queue an execution of `target` (no worker runs it); returns its id."""
        request = ExecuteRequest(input={"quarter": "Q3"})
        accepted = await submit(self.store, target, request, headers)
        return accepted.execution_id

    async def doc(self, execution_id: str) -> dict[str, Any]:
        """The execution's status document, as GET answers it."""
        raw = await self.store.get_doc(execution_id)
        assert raw is not None, execution_id
        doc: dict[str, Any] = json.loads(raw)
        return doc

    async def fields(self, execution_id: str) -> dict[str, str]:
        """The execution's hash, read from Redis as `redis-cli HGETALL` would."""
        raw = await self.redis.hgetall(self.store.keys.execution(execution_id))  # type: ignore[misc]  # redis-py's async stubs
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def claim(self, execution_id: str, worker_id: str = "") -> Outcome:
        """Claim the current job as another worker would (a crashed or concurrent one)."""
        now = now_ms()
        job = await self.job(execution_id)
        claim = await self.store.claim(
            execution_id, rfc3339(now), now, job_id=job, worker_id=worker_id
        )
        return claim.outcome

    async def job(self, execution_id: str) -> str:
        """The id of the arq job that may run the execution now."""
        return (await self.fields(execution_id)).get("job", execution_id)

    async def wait_s(self, execution_id: str) -> float:
        """How long the execution's current job waits in the queue from now."""
        score = await self.redis.zscore(self.store.keys.queue, await self.job(execution_id))
        assert score is not None, execution_id
        return (float(score) - now_ms()) / 1000

    async def node(self, **policy: Any) -> None:
        """Register the node again with these registration fields."""
        node = NodeRegistration(
            id="finance",
            base_url=BASE_URL,
            reasoners=[TargetSpec(id="deep_analysis")],
            skills=[TargetSpec(id="add")],
            **policy,
        )
        await self.nodes.register(b'{"id": "finance"}', node)

    async def aclose(self) -> None:
        """Close the runners' HTTP clients."""
        for http in self._clients:
            await http.aclose()


@pytest.fixture
async def harness(redis_client: Redis, settings: Settings) -> AsyncIterator[Harness]:
    settings = msgspec.structs.replace(settings, agent_max_attempts=MAX_ATTEMPTS)
    nodes = NodeRegistry(redis_client, settings)
    node = NodeRegistration(
        id="finance",
        base_url=BASE_URL,
        reasoners=[TargetSpec(id="deep_analysis")],
        skills=[TargetSpec(id="add")],
    )
    await nodes.register(b'{"id": "finance"}', node)
    harness = Harness(redis_client, settings, nodes)
    yield harness
    await harness.aclose()


def _json(body: Any, status: int = 200) -> Answer:
    return lambda request: httpx.Response(status, json=body)


def _raw(content: bytes, status: int = 200, media_type: str = "text/plain") -> Answer:
    return lambda request: httpx.Response(
        status, content=content, headers={"Content-Type": media_type}
    )


def _raise(error: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("scripted by the test", request=request)

    return answer


async def _until_settled(harness: Harness, runner: Runner, execution_id: str) -> list[float]:
    """Run each job the execution is queued under, back to back (as arq would once each is
    due) until it settles; returns the waits it was queued again with."""
    waits: list[float] = []
    while True:
        await runner.run(execution_id, job_id=await harness.job(execution_id))
        if (await harness.doc(execution_id))["status"] != "queued":
            return waits
        waits.append(await harness.wait_s(execution_id))
        assert len(waits) <= MAX_ATTEMPTS, f"still retrying after {waits}"


async def test_a_json_answer_succeeds_with_the_json_as_the_result(harness: Harness) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"answer": 42, "items": [1, None]}))
    await runner.run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"answer": 42, "items": [1, None]}
    assert isinstance(doc["duration_ms"], int)


async def test_the_agent_is_posted_the_input_with_the_execution_headers(
    harness: Harness,
) -> None:
    execution_id = await harness.submit(**{"x-run-id": "run_parent", "x-session-id": "s-1"})
    await harness.runner(_json({})).run(execution_id)
    (call,) = harness.calls
    assert call.method == "POST"
    assert str(call.url) == f"{BASE_URL}/reasoners/deep_analysis"
    assert json.loads(call.content) == {"quarter": "Q3"}
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-execution-id"] == execution_id
    assert call.headers["x-run-id"] == "run_parent"
    assert call.headers["x-workflow-id"] == "run_parent"
    assert call.headers["x-session-id"] == "s-1"


async def test_the_agent_call_carries_the_token_that_proves_its_report(
    harness: Harness,
) -> None:
    execution_id, other = await harness.submit(), await harness.submit()
    await harness.runner(_json({}, 202)).run(execution_id, last_try=False)
    token = harness.calls[0].headers["x-callback-token"]
    proof = CallbackProof(harness.redis, harness.settings)
    await proof.check(execution_id, None, token, None)
    with pytest.raises(ExecutionNotFound):
        await proof.check(other, None, token, None)


async def test_a_skill_is_posted_to_its_skills_route(harness: Harness) -> None:
    execution_id = await harness.submit("finance.add")
    await harness.runner(_json({"sum": 5})).run(execution_id)
    assert str(harness.calls[0].url) == f"{BASE_URL}/skills/add"
    assert (await harness.doc(execution_id))["result"] == {"sum": 5}


async def test_a_non_json_answer_succeeds_with_the_body_as_a_string(harness: Harness) -> None:
    execution_id = await harness.submit()
    await harness.runner(_raw(b"plain words")).run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "succeeded"
    assert doc["result"] == "plain words"


async def test_an_empty_answer_succeeds_with_a_null_result(harness: Harness) -> None:
    execution_id = await harness.submit()
    await harness.runner(_raw(b"")).run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "succeeded"
    assert "result" in doc
    assert doc["result"] is None


async def test_a_202_leaves_the_execution_running_until_its_callback(harness: Harness) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"status": "processing"}, 202))
    await runner.run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "running"
    assert "completed_at" not in doc
    assert (await harness.fields(execution_id))["phase"] == "awaiting_callback"
    assert await harness.claim(execution_id) is Outcome.AWAITING


async def test_a_redelivered_job_does_not_call_an_agent_that_answered_202_again(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"status": "processing"}, 202))
    await runner.run(execution_id)
    await runner.run(execution_id)
    assert len(harness.calls) == 1
    assert (await harness.fields(execution_id))["attempt"] == "1"


async def test_a_4xx_fails_at_once_with_the_status_and_the_start_of_the_body(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"detail": "quarter is required"}, 422))
    await runner.run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "422" in doc["error"]
    assert "quarter is required" in doc["error"]
    assert len(harness.calls) == 1


async def test_a_503_is_retried_after_a_backoff_then_fails_with_the_start_of_the_body(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    body = b"upstream overloaded " + b"z" * 2 * AGENT_ERROR_BODY_CHARS
    runner = harness.runner(_raw(body, 503))
    waits = await _until_settled(harness, runner, execution_id)
    assert len(waits) == MAX_ATTEMPTS - 1
    assert all(w <= harness.settings.agent_retry_max_s for w in waits)
    assert len(harness.calls) == MAX_ATTEMPTS
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "503" in doc["error"]
    assert "upstream overloaded" in doc["error"]
    assert "z" * AGENT_ERROR_BODY_CHARS not in doc["error"]
    assert f"after {MAX_ATTEMPTS} attempts" in doc["error"]


async def test_a_retry_waits_queued_under_a_new_job_id(harness: Harness) -> None:
    execution_id = await harness.submit()
    await harness.runner(_raw(b"busy", 429)).run(execution_id)
    assert (await harness.doc(execution_id))["status"] == "queued"
    job = await harness.job(execution_id)
    assert job != execution_id
    assert await harness.redis.exists(harness.store.keys.arq_job(job))
    assert await harness.redis.zscore(harness.store.keys.queue, execution_id) is None


async def test_the_job_an_execution_was_moved_from_does_not_run_it(harness: Harness) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_raw(b"busy", 503))
    await runner.run(execution_id)
    await runner.run(execution_id, job_id=execution_id)  # arq running the old job again
    assert len(harness.calls) == 1
    assert (await harness.fields(execution_id))["attempt"] == "1"


async def test_an_unreachable_agent_is_waited_for_without_spending_attempts(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    down = harness.runner(_raise(httpx.ConnectError))
    for _ in range(MAX_ATTEMPTS + 2):
        await down.run(execution_id, job_id=await harness.job(execution_id))
        assert (await harness.doc(execution_id))["status"] == "queued"
        assert await harness.wait_s(execution_id) <= harness.settings.agent_wait_max_s
    await harness.runner(_json({"back": True})).run(
        execution_id, job_id=await harness.job(execution_id)
    )
    doc = await harness.doc(execution_id)
    assert doc["status"] == "succeeded"
    assert doc["result"] == {"back": True}


async def test_an_execution_for_a_node_that_is_not_live_waits_without_a_call(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    await harness.nodes.stop("finance")
    await harness.runner(_json({})).run(execution_id)
    assert harness.calls == []
    assert (await harness.doc(execution_id))["status"] == "queued"
    assert (await harness.fields(execution_id))["uncharged"] == "1"


async def test_on_the_last_job_try_an_unreachable_agent_fails(harness: Harness) -> None:
    execution_id = await harness.submit()
    await harness.runner(_raise(httpx.ConnectError)).run(execution_id, last_try=True)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "unreachable" in doc["error"]


@pytest.mark.parametrize(
    "answer",
    [_raise(httpx.ReadTimeout), _raise(httpx.RemoteProtocolError), _raw(b"it raised", 500)],
    ids=["read timeout", "connection dropped", "500"],
)
async def test_a_call_that_may_have_run_fails_without_being_repeated(
    harness: Harness, answer: Answer
) -> None:
    execution_id = await harness.submit()
    await harness.runner(answer).run(execution_id)
    assert len(harness.calls) == 1
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "not retried, it may have run" in doc["error"]


async def test_a_node_that_declares_its_calls_safe_to_repeat_has_a_500_retried(
    harness: Harness,
) -> None:
    await harness.node(retry_safe=True)
    execution_id = await harness.submit()
    waits = await _until_settled(harness, harness.runner(_raw(b"it raised", 500)), execution_id)
    assert len(waits) == MAX_ATTEMPTS - 1
    assert len(harness.calls) == MAX_ATTEMPTS
    assert (await harness.doc(execution_id))["status"] == "failed"


async def test_an_agent_that_never_answers_is_cut_off_at_the_time_limit_and_not_rerun(
    harness: Harness,
) -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never set: only the runner's limit ends this call
        raise AssertionError("unreachable")

    execution_id = await harness.submit()
    await harness.runner(silent, agent_timeout_s=TIME_LIMIT_S).run(execution_id)
    assert len(harness.calls) == 1
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert f"timed out after {TIME_LIMIT_S:g}s" in doc["error"]


async def test_an_agent_trickling_its_answer_past_the_time_limit_is_cut_off(
    harness: Harness,
) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        # Each chunk comes well within any per-read timeout; the whole never ends.
        yield b'"'
        while True:
            await asyncio.sleep(TIME_LIMIT_S / 10)
            yield b"x"

    execution_id = await harness.submit()
    runner = harness.runner(
        lambda request: httpx.Response(200, content=trickle()), agent_timeout_s=TIME_LIMIT_S
    )
    await runner.run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "timed out" in doc["error"]
    assert "result" not in doc


async def test_the_node_s_call_limit_replaces_the_default(harness: Harness) -> None:
    await harness.node(call_timeout_s=TIME_LIMIT_S)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(TIME_LIMIT_S * 5)
        return httpx.Response(200, json={})

    execution_id = await harness.submit()
    await harness.runner(slow, agent_timeout_s=30.0).run(execution_id)
    assert f"timed out after {TIME_LIMIT_S:g}s" in (await harness.doc(execution_id))["error"]


async def test_the_request_s_call_limit_replaces_the_node_s(harness: Harness) -> None:
    await harness.node(call_timeout_s=TIME_LIMIT_S)

    async def slower(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(TIME_LIMIT_S * 2)
        return httpx.Response(200, json={"late": "but in time"})

    request = ExecuteRequest(input={}, timeout_s=TIME_LIMIT_S * 20)
    execution_id = (await submit(harness.store, "finance.deep_analysis", request, {})).execution_id
    await harness.runner(slower).run(execution_id)
    assert (await harness.doc(execution_id))["result"] == {"late": "but in time"}


async def test_a_worker_stopped_mid_call_hands_the_execution_back_unspent(
    harness: Harness,
) -> None:
    started = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    execution_id = await harness.submit()
    task = asyncio.create_task(harness.runner(held).run(execution_id))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fields = await harness.fields(execution_id)
    assert (fields["status"], fields["uncharged"], fields["requeued"]) == (
        "queued",
        "1",
        "worker stopped",
    )
    assert await harness.wait_s(execution_id) <= 0


async def test_an_execution_claimed_after_its_deadline_times_out_without_a_call(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    await harness.redis.hset(harness.store.keys.execution(execution_id), "deadline_ms", "1")  # type: ignore[misc]  # redis-py's async stubs
    await harness.runner(_json({})).run(execution_id)
    assert harness.calls == []
    doc = await harness.doc(execution_id)
    assert doc["status"] == "timeout"


async def test_an_execution_held_by_a_live_worker_is_not_claimed_by_another(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    await harness.redis.zadd(harness.store.keys.workers, {"wrk_live": now_ms() + 60_000})
    assert await harness.claim(execution_id, "wrk_live") is Outcome.OK
    assert await harness.claim(execution_id, "wrk_other") is Outcome.HELD


async def test_a_worker_s_job_is_listed_as_running_from_before_its_claim(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its lease hands back the holds of this worker with no job in `running`: a claim in
    # flight must not look like one.
    execution_id = await harness.submit()
    runner = harness.runner(_json("ok"))
    seen: list[set[str]] = []
    claim = runner.store.claim

    async def listed_claim(*args: Any, **kwargs: Any) -> Any:
        seen.append(set(runner.running))
        return await claim(*args, **kwargs)

    monkeypatch.setattr(runner.store, "claim", listed_claim)
    await runner.run(execution_id)
    assert seen == [{execution_id}]
    assert runner.running == set()


async def test_a_worker_holding_what_it_no_longer_runs_claims_it_again(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    await harness.redis.zadd(harness.store.keys.workers, {"wrk_busy": now_ms() + 60_000})
    assert await harness.claim(execution_id, "wrk_busy") is Outcome.OK  # its settle was lost
    runner = harness.runner(_json("ok"))
    runner.worker_id = "wrk_busy"
    await runner.run(execution_id)
    assert (await harness.doc(execution_id))["status"] == "succeeded"
    assert (await harness.fields(execution_id))["attempt"] == "2"


async def test_a_job_arq_starts_again_while_its_worker_still_runs_it_is_not_claimed(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    await harness.redis.zadd(harness.store.keys.workers, {"wrk_busy": now_ms() + 60_000})
    assert await harness.claim(execution_id, "wrk_busy") is Outcome.OK
    runner = harness.runner(_json("ok"))
    runner.worker_id = "wrk_busy"
    runner.running.add(execution_id)  # the first run of the job, still calling the agent
    await runner.run(execution_id)
    assert harness.calls == []
    assert (await harness.fields(execution_id))["attempt"] == "1"
    assert runner.running == {execution_id}


async def test_a_result_over_the_cap_fails_as_too_large(harness: Harness) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"blob": "x" * 200}), max_result_bytes=100)
    await runner.run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "too large" in doc["error"]
    assert "result" not in doc


async def test_a_result_at_the_cap_is_kept(harness: Harness) -> None:
    execution_id = await harness.submit()
    body = b'"' + b"x" * 98 + b'"'
    await harness.runner(_raw(body, media_type="application/json"), max_result_bytes=100).run(
        execution_id, last_try=False
    )
    assert (await harness.doc(execution_id))["result"] == "x" * 98


async def test_an_execution_claimed_by_too_many_crashed_workers_fails_without_a_call(
    harness: Harness,
) -> None:
    execution_id = await harness.submit()
    for _ in range(MAX_ATTEMPTS):
        assert await harness.claim(execution_id) is Outcome.OK  # each worker died mid-call
    await harness.runner(_json({})).run(execution_id)
    assert harness.calls == []
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert f"gave up after {MAX_ATTEMPTS} attempts" in doc["error"]


async def test_on_the_last_job_try_a_transient_error_fails_at_once(harness: Harness) -> None:
    execution_id = await harness.submit()
    await harness.runner(_raw(b"try again", 503)).run(execution_id, last_try=True)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "503" in doc["error"]
    assert "after 1 attempts" in doc["error"]
    assert len(harness.calls) == 1


async def test_an_execution_whose_node_is_gone_fails_without_a_call(
    harness: Harness, redis_client: Redis
) -> None:
    execution_id = await harness.submit()
    await redis_client.delete(harness.nodes.keys.node("finance"))
    await harness.runner(_json({})).run(execution_id)
    assert harness.calls == []
    doc = await harness.doc(execution_id)
    assert doc["status"] == "failed"
    assert "node 'finance' is gone" in doc["error"]


async def test_a_stale_attempt_does_not_overwrite_the_newer_one(harness: Harness) -> None:
    execution_id = await harness.submit()

    async def overtaken(request: httpx.Request) -> httpx.Response:
        # Another worker claims the execution while this attempt is still at the agent.
        assert await harness.claim(execution_id) is Outcome.OK
        return httpx.Response(200, json={"from": "the stale attempt"})

    await harness.runner(overtaken).run(execution_id)
    doc = await harness.doc(execution_id)
    assert doc["status"] == "running"
    assert "result" not in doc
    assert (await harness.fields(execution_id))["attempt"] == "2"


async def test_a_finished_execution_is_not_run_again(harness: Harness) -> None:
    execution_id = await harness.submit()
    runner = harness.runner(_json({"once": True}))
    await runner.run(execution_id)
    await runner.run(execution_id)
    assert len(harness.calls) == 1
    assert (await harness.doc(execution_id))["result"] == {"once": True}
