"""The shared waiter: one batch poll per round for every outstanding wait."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from agentfield_arq.client.waiter import Waiter
from agentfield_arq.kernel import errors


class State(msgspec.Struct):
    execution_id: str
    status: str

    @property
    def settled(self) -> bool:
        return self.status in ("succeeded", "failed", "not_found")


class Backend:
    """A fetch function whose executions finish after `rounds` polls; records each batch."""

    def __init__(self, rounds: int = 3) -> None:
        self.rounds = rounds
        self.batches: list[list[str]] = []
        self.failures: list[Exception] = []

    async def fetch(self, ids: list[str]) -> dict[str, State]:
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(ids)
        status = "succeeded" if len(self.batches) >= self.rounds else "running"
        return {i: State(i, status) for i in ids}


def waiter(backend: Backend) -> Waiter[State]:
    return Waiter(backend.fetch, min_interval_s=0.001, max_interval_s=0.01)


async def test_fifty_concurrent_waits_share_one_batch_request_per_round() -> None:
    backend = Backend(rounds=3)
    shared = waiter(backend)
    ids = [f"exec_{i}" for i in range(50)]
    results = await asyncio.gather(*(shared.wait([i]) for i in ids))
    assert [r[i].status for r, i in zip(results, ids, strict=True)] == ["succeeded"] * 50
    assert len(backend.batches) == 3
    assert sorted(backend.batches[-1]) == sorted(ids)
    assert shared.pending == 0


async def test_a_transient_failure_keeps_the_wait_going() -> None:
    backend = Backend(rounds=1)
    backend.failures = [errors.ControlPlaneUnreachable("down", request_sent=False)] * 2
    found = await waiter(backend).wait(["exec_1"], timeout_s=5)
    assert found["exec_1"].status == "succeeded"


async def test_a_permanent_failure_fails_every_wait_instead_of_hanging() -> None:
    backend = Backend(rounds=1)
    backend.failures = [errors.InvalidRequest("bad ids")]
    shared = waiter(backend)
    outcomes = await asyncio.gather(
        shared.wait(["exec_1"]), shared.wait(["exec_2"]), return_exceptions=True
    )
    assert all(isinstance(o, errors.InvalidRequest) for o in outcomes)


async def test_a_timed_out_wait_names_its_ids_and_stops_polling_them() -> None:
    backend = Backend(rounds=10_000)
    shared = waiter(backend)
    with pytest.raises(errors.WaitTimeout) as caught:
        await shared.wait(["exec_1", "exec_2"], timeout_s=0.02)
    assert caught.value.execution_ids == ["exec_1", "exec_2"]
    assert shared.pending == 0


async def test_a_cancelled_wait_leaves_the_other_waits_alone() -> None:
    backend = Backend(rounds=5)
    shared = waiter(backend)
    doomed = asyncio.create_task(shared.wait(["exec_1"]))
    kept = asyncio.create_task(shared.wait(["exec_2"]))
    await asyncio.sleep(0)
    doomed.cancel()
    assert (await kept)["exec_2"].status == "succeeded"
    assert all(batch == ["exec_2"] for batch in backend.batches[1:])


def test_the_interval_follows_the_age_of_the_youngest_wait_within_bounds() -> None:
    shared = Waiter(Backend().fetch, min_interval_s=0.05, max_interval_s=1.0)
    shared._since = {"old": 0.0, "young": 9.8}
    assert shared._delay(10.0) == pytest.approx(0.05)
    shared._since = {"old": 0.0, "mid": 8.0}
    assert shared._delay(10.0) == pytest.approx(0.5)
    shared._since = {"old": 0.0}
    assert shared._delay(10.0) == pytest.approx(1.0)


def test_the_interval_backs_off_while_polls_fail() -> None:
    shared = Waiter(Backend().fetch, min_interval_s=0.05, max_interval_s=1.0)
    shared._failures = 3
    assert shared._delay(0.0) == pytest.approx(0.4)
    shared._failures = 30
    assert shared._delay(0.0) == pytest.approx(5.0)


async def test_a_5xx_answer_keeps_the_wait_going_but_a_4xx_ends_it() -> None:
    overloaded = errors.ApiError("bad gateway")
    overloaded.status_code = 502
    refused = errors.TooManyIds("too many")
    refused.status_code = 400
    backend = Backend(rounds=1)
    backend.failures = [overloaded]
    assert (await waiter(backend).wait(["exec_1"], timeout_s=5))["exec_1"].status == "succeeded"
    backend.failures = [refused]
    with pytest.raises(errors.TooManyIds):
        await waiter(backend).wait(["exec_2"], timeout_s=5)
