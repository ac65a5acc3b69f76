"""Everything the control plane relies on in arq: its job format, its keys, and its poll loop.

The control plane never enqueues through arq's client. The Lua scripts that create an execution
(create.lua), make it terminal (finish.lua) or redrive its webhook (webhook_redrive.lua) write
arq's job record and queue entry themselves, in the same atomic step as the state change, so
that an execution is never stored without its job nor queued without its record. This module
builds those records (msgpack, never pickle; arguments are ids only) and names the jobs, their
ids and arq's keys; the worker adapter (`workers/`) registers the job functions under these
names and runs `WakingWorker`.

An idle worker is woken by new work instead of only polling for it. arq polls its queue every
`poll_delay`; an idle worker leaves a new job waiting half of that on average, and with the
default 50 ms that wait was most of an idle execution's end-to-end latency (bench/: 14 ms of
19 ms). Every script that queues a job appends a lifecycle entry in the same step (`queued`, or
a terminal one carrying `job` when a webhook delivery was queued), so a worker with free slots
blocks on that stream (XREAD BLOCK, on a connection of its own) between polls and polls again as
soon as something was queued. The poll delay stays the upper bound of every wait, so delayed
retries and redriven deliveries (queued without an entry) are found exactly as before; a worker
whose slots are all taken sleeps the poll delay as arq does.

When upgrading arq
------------------
pyproject pins arq exactly ("arq==0.28.0"). Before moving the pin, check in the new release:

- The job record: `arq.jobs.serialize_job` still writes, and `deserialize_job` still reads, a
  mapping of `t` (job try), `f` (function), `a` (args), `k` (kwargs) and `et` (enqueue time,
  unix ms). tests/unit/test_arq_bridge.py round-trips our records through `deserialize_job`.
- The key prefixes `arq.constants.job_key_prefix` and `in_progress_key_prefix`, which keys.py
  builds the job and lock keys from (arq does not prefix them per queue), and that the queue is
  still a sorted set of job ids scored by the unix ms at which they may run.
- The in-progress lock: webhook_redrive.lua refuses to queue a delivery while the lock of the
  same job id is held, because arq's `finish_job` of the previous run deletes the job record of
  that id. `WakingWorker` sets `Worker.in_progress_timeout_s` (`Settings.lock_timeout_s`), and
  `Settings.recovery_bound_s` assumes that arq takes a job whose lock expired. requeue.lua
  deletes a run job's record, lock and retry count (`arq:retry:`) before queueing a new id.
- The try counter: arq INCRs `arq:retry:{job id}` when a run of a job starts and keeps it when
  the job raises `Retry`; node_slot.lua DECRs it when a node is at its cap, so that waiting for
  a slot is not counted as one of the job's tries (`max_tries`, `job_try`).
- Job ends: `WakingWorker.finish_job` skips arq's for a run job whose own step ended it:
  finish.lua (or await_callback.lua, for a 202) deletes what arq's `finish_job` would (the
  record, the in-progress lock, the try count, the queue entry; `arq:abort` is unused, results
  are not kept) in that step, one round trip fewer per execution. `run_job` must still call
  `finish_job(job_id, ...)` once after each job function returns or raises.
- Drains: `job_completion_wait` (SIGTERM stops picking jobs, waits, then cancels the tasks);
  arq leaves a cancelled job queued to run again, which for a run job that handed its
  execution back first is a no-op (its record and queue entry are gone).
- The poll loop: `WakingWorker` overrides the private `Worker._poll_iteration` and reads the
  private `job_counter` and `max_jobs`; `Worker.main` must still call `_poll_iteration` once
  per `poll_delay` (we pass 0) and, in burst mode, stop once the queue is empty (the
  in-process tests, tests/integration/test_worker.py, rely on that).
- Job starts: `WakingWorker.start_jobs` replaces arq's (start_jobs.lua takes the in-progress
  locks of a whole poll in one script) and keeps its bookkeeping: `sem`, `job_counter`,
  `tasks`, `run_job(job_id, score)` and `_release_sem_dec_counter_on_complete`. An id that
  the script found held by another worker is not sent again until its lock's PTTL (as asked)
  has passed, a poll no longer reads it, or a poll failed. That relies on arq removing a
  job's lock only when the job ends (it then leaves the queue too) or is to run again
  (`finish_job` with `incr_score`: the worker that ran it starts it again, not having skipped
  it), so that a job skipped so is at worst started by this worker once its lock may lapse,
  which is also when arq's crash recovery would start it (`Settings.recovery_bound_s`).
- arq 0.28's `Worker.close` calls redis-py's deprecated `close()`; those tests ignore that
  warning, and the filter can go once arq calls `aclose()`.
- Redis outages: arq's `Worker.main` runs `_poll_iteration` in a bare loop, so a Redis error
  in its poll, its job starts (`start_jobs`), its health record or its cron enqueues ends the
  worker process (exit code 1). `WakingWorker._poll_iteration` catches those errors and polls
  again with a growing delay; `start_jobs` takes a slot (arq's `job_counter` and semaphore)
  only for a job whose start Redis confirmed. arq's
  `create_pool` sets no command timeout, so `arq_pool` builds the worker's pool itself. What
  `Worker.main` does before its loop (`log_redis_info`, `on_startup`) fails as a whole:
  `WakingWorker.main` runs it again after a delay, which relies on on_startup reading Redis
  (its first lease beat) before it builds anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfield_arq.core.connection import connect, connection_pool, reraise_cancel
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.sentinel import sentinel_address
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.backoff import backoff_s
from agentfield_arq.kernel.codec import text
from agentfield_arq.kernel.errors import NotReplicated
from agentfield_arq.kernel.status import Status

logger = logging.getLogger(__name__)

# Job function names. A run job's id is its execution id (create.lua queues that id).
RUN_EXECUTION = "run_execution"
DELIVER_WEBHOOK = "deliver_webhook"
NOTIFY_WEBHOOK = "notify_webhook"
SWEEP_DEADLINES = "sweep_deadlines"
TELL_AGENT = "tell_agent"

# arq's own key prefixes (keys.py spells the keys).
JOB_KEY_PREFIX = job_key_prefix
IN_PROGRESS_KEY_PREFIX = in_progress_key_prefix
RETRY_KEY_PREFIX = retry_key_prefix

# How long a run job's record may wait in the queue before Redis expires it (arq's default,
# `expires_extra_ms`). A delivery job's record lives as long as its execution's.
JOB_PAYLOAD_TTL_MS = 86_400_000

# Lifecycle entries read per XREAD while waiting to be woken.
READ_COUNT = 100
# The job context's set of run jobs that their settle ended (core/runner.py, finish.lua): made
# by WakingWorker, filled by the Runner, emptied by WakingWorker.finish_job.
SETTLED_JOBS = "settled_jobs"
_QUEUED = Status.QUEUED.value.encode()
# Redis is unreachable, stalled or still loading its data, or no replica confirmed a write that
# REDIS_WAIT_REPLICAS wanted confirmed: what a job retries (redis-py raises WatchError for a
# connection lost while a key is watched; a transition retried after NotReplicated changes
# nothing and waits for the replicas again).
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, WatchError, OSError, NotReplicated)
# What the poll loop survives: any Redis error (it polls again), so that no Redis answer can
# end the worker process.
POLL_ERRORS = (RedisError, OSError)
OUTAGE_BASE_S = 0.1
OUTAGE_CAP_S = 1.0


def _exception_text(obj: Any) -> str:
    # arq writes the exception a job failed with into its result (`serialize_result`, as for
    # "job expired"); msgpack has no type for it, and arq would log a traceback and write
    # "unable to serialize result" instead. Its text is what a reader of the result needs.
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    raise NotImplementedError(f"arq_serialize cannot encode {type(obj).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_exception_text)
_decoder = msgspec.msgpack.Decoder()


def arq_serialize(obj: dict[str, Any]) -> bytes:
    """arq's job serializer: msgpack, never pickle (an exception is written as its text)."""
    return _encoder.encode(obj)


def arq_deserialize(data: bytes) -> dict[str, Any]:
    """arq's job deserializer: msgpack, never pickle."""
    value: dict[str, Any] = _decoder.decode(data)
    return value


def _payload(function: str, execution_id: str, enqueue_ms: int, *more: str) -> bytes:
    # No job try: arq counts tries itself (its retry key), starting at 1.
    args = (execution_id, *more)
    return serialize_job(function, args, {}, None, enqueue_ms, serializer=arq_serialize)


def run_job_payload(execution_id: str, enqueue_ms: int) -> bytes:
    """arq's job record of `run_execution(execution_id)`, enqueued at `enqueue_ms`."""
    return _payload(RUN_EXECUTION, execution_id, enqueue_ms)


def delivery_job_payload(execution_id: str, enqueue_ms: int) -> bytes:
    """arq's job record of `deliver_webhook(execution_id)`, enqueued at `enqueue_ms`."""
    return _payload(DELIVER_WEBHOOK, execution_id, enqueue_ms)


def run_job_id(execution_id: str, token: str) -> str:
    """The arq job id of a run queued again (a hand-back, a retry, a wait for the node): a
    fresh id each time, so that a worker still finishing an older job of the execution (arq's
    `finish_job` deletes its job's record and queue entry) cannot touch the new one; the first
    run job's id is the execution id itself."""
    return f"{execution_id}~{token}"


def run_job_execution(job_id: str) -> str:
    """The execution a run job belongs to (its first job's id, or one of `run_job_id`)."""
    return job_id.split("~", 1)[0]


def delivery_job_id(execution_id: str) -> str:
    """The arq job id of an execution's webhook delivery (its run job's id is the execution id)."""
    return f"whk_{execution_id}"


def tell_agent_job_payload(execution_id: str, enqueue_ms: int) -> bytes:
    """arq's job record of `tell_agent(execution_id)`: a cancelled or timed-out execution's
    agent is told to stop, and a cancel reaches the execution's descendants."""
    return _payload(TELL_AGENT, execution_id, enqueue_ms)


def tell_agent_job_id(execution_id: str) -> str:
    """The arq job id of telling an execution's agent that it ended without it."""
    return f"cnl_{execution_id}"


def arq_pool(settings: Settings, queue: str) -> ArqRedis:
    """The worker's Redis pool, as arq's `create_pool` builds it but with our connection class
    and timeouts (arq's sets none for commands), at most `worker_redis_connections`
    connections (core/connection.py), through Sentinel for a `redis+sentinel://` URL, and our
    msgpack serializer."""
    return ArqRedis(
        connection_pool(
            settings.redis_url, settings, max_connections=settings.worker_redis_connections
        ),
        job_serializer=arq_serialize,
        job_deserializer=arq_deserialize,
        default_queue_name=queue,
    )


def notice_job_id(execution_id: str, event: str, bucket: int) -> str:
    """The arq job id of a webhook notice: one per execution for `started`, one per throttle
    bucket for `progress`."""
    return f"ntc_{execution_id}_{event}_{bucket}"


def notice_job_payload(execution_id: str, event: str, bucket: int, enqueue_ms: int) -> bytes:
    """arq's job record of `notify_webhook(execution_id, event, bucket)`."""
    return _payload(NOTIFY_WEBHOOK, execution_id, enqueue_ms, event, str(bucket))


def redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for `url`, a plain Redis URL or a `redis+sentinel://` one (for
    a Worker built without `arq_pool`: arq then asks the same sentinels)."""
    address = sentinel_address(url)
    if address is None:
        return RedisSettings.from_dsn(url)
    return RedisSettings(
        host=address.sentinels,
        sentinel=True,
        sentinel_master=address.service,
        database=address.db,
        username=address.username,
        password=address.password,
    )


def sweep_cron_name(key_prefix: str) -> str:
    """The sweep's cron job name. arq derives cron job ids, and so their job and lock keys, from
    the name alone, without the queue: the key prefix keeps deployments on one Redis apart."""
    return f"{SWEEP_DEADLINES}:{key_prefix}"


class Wake:
    """Waits for an entry that queued a job (`queued`, or one with `job`) newer than what this
    worker has seen, or a deadline."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self.redis = redis
        self.stream = stream
        self.cursor: bytes | str | None = None

    async def prime(self) -> None:
        """Move the cursor to the stream's tail; done before a poll, so that whatever is
        queued after that poll looked at the queue has an entry newer than the cursor."""
        last = await self.redis.xrevrange(self.stream, count=1)
        self.cursor = last[0][0] if last else "0-0"

    async def wait(self, deadline: float) -> bool:
        """True as soon as an execution is queued, False at `deadline` (loop time)."""
        if self.cursor is None:
            await self.prime()
        loop = asyncio.get_running_loop()
        while (left_ms := round((deadline - loop.time()) * 1000)) > 0:
            assert self.cursor is not None
            replies = await self.redis.xread(
                {self.stream: self.cursor}, count=READ_COUNT, block=left_ms
            )
            if not replies:
                return False
            queued = False
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    self.cursor = entry_id
                    queued = queued or fields.get(b"status") == _QUEUED or b"job" in fields
            if queued:
                return True
        return False


class WakingWorker(Worker):
    """arq's Worker, polling at once when the lifecycle stream says something was queued.

    Takes arq's `Worker` arguments, plus the settings (Redis URL and timeouts) and the stream to
    wake on. A Redis outage does not end it: it polls again, with a growing delay, until Redis
    answers.
    """

    def __init__(self, *, settings: Settings, wake_stream: str, **kwargs: Any) -> None:
        self.wait_s = float(kwargs.pop("poll_delay"))
        # arq's own loop must not sleep between polls: _poll_iteration below does the waiting.
        super().__init__(poll_delay=0, **kwargs)
        # arq sizes its lock on the longest job timeout, which for run jobs is the longest agent
        # call allowed; run jobs do not need it (claims are fenced by the worker leases), and
        # deliveries, which do, would otherwise wait that long after a crash.
        self.in_progress_timeout_s = settings.lock_timeout_s
        self.wake_redis = connect(settings.redis_url, settings, block_s=self.wait_s)
        self.wake = Wake(self.wake_redis, wake_stream)
        # Registered on the wake-up client for its encoding; run on arq's pool.
        self.start_script = load_script(self.wake_redis, "start_jobs")
        self.failed_polls = 0
        # Failed start-ups (`main`), until the poll loop runs.
        self.failed_starts = 0
        self.polling = False
        self.settled: set[str] = set()
        self.ctx[SETTLED_JOBS] = self.settled
        # The jobs another worker was found running, each with the loop time before which its
        # lock cannot lapse (the lock's PTTL when asked; renewed by its worker's lease beats,
        # core/lease.py, it may outlast that, and is then found held again). Kept for the ids
        # of the last poll only (a job that ended has left the queue), and forgotten when a
        # poll fails.
        self.held: dict[str, float] = {}

    async def main(self) -> None:
        """arq's, outlasting a Redis that fails while the worker starts. arq's start-up reads
        Redis (`log_redis_info`, then on_startup's first lease beat, before it builds anything)
        ahead of the poll loop that outlasts outages; a failure there is tried again with a
        growing delay, as a failed poll is, instead of ending the process."""
        while True:
            try:
                await super().main()
                return
            except POLL_ERRORS as exc:
                if self.polling:
                    raise
                reraise_cancel()
                self.failed_starts += 1
                if self.failed_starts == 1:
                    logger.warning("redis unavailable while starting, trying again: %s", exc)
                await asyncio.sleep(backoff_s(self.failed_starts, OUTAGE_BASE_S, OUTAGE_CAP_S))

    async def _poll_iteration(self) -> None:
        self.polling = True
        try:
            await self._poll_and_wait()
        except POLL_ERRORS as exc:
            reraise_cancel()
            self.failed_polls += 1
            if self.failed_polls == 1:
                logger.warning("redis unavailable, polling again until it answers: %s", exc)
            self.wake.cursor = None
            # Redis may come back without the locks it answered held (restarted from an older
            # append-only file, or a replica promoted): ask about those ids again.
            self.held.clear()
            await asyncio.sleep(backoff_s(self.failed_polls, OUTAGE_BASE_S, OUTAGE_CAP_S))
            return
        if self.failed_polls:
            logger.info("redis answers again (after %d failed polls)", self.failed_polls)
            self.failed_polls = 0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's job starts, for all the ids of a poll in one script (start_jobs.lua) instead of
        four round trips per id. arq keeps a job in its queue until it ends, so with thousands
        of slots most of what a poll reads is running already, here or elsewhere: the ids of
        the jobs this worker runs are skipped without asking Redis, and so are those the script
        found held elsewhere, until their lock may lapse (`held`). A slot is taken only for a
        job the script started, so a start that Redis failed holds none."""
        asked = self.loop.time()
        ids = [text(job_id) for job_id in job_ids]
        self.held = {i: until for i in ids if (until := self.held.get(i, 0.0)) > asked}
        free = self.max_jobs - self.job_counter
        candidates = [i for i in ids if i not in self.held and not self._running_here(i)]
        if free <= 0 or not candidates:
            return
        lock_ms = int(self.in_progress_timeout_s * 1000)
        args: list[str | int] = [timestamp_ms(), lock_ms, free, IN_PROGRESS_KEY_PREFIX]
        args += candidates
        taken, held = await self.start_script(keys=[self.queue_name], args=args, client=self.pool)
        for raw_id, ttl_ms in zip(held[::2], held[1::2], strict=True):
            if ttl_ms > 0:
                # From before the script ran: never later than the lock may lapse.
                self.held[text(raw_id)] = asked + ttl_ms / 1000
        for raw_id, score in zip(taken[::2], taken[1::2], strict=True):
            await self.sem.acquire()
            self.job_counter += 1
            job_id = text(raw_id)
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's, but for a run job that its settle ended (finish.lua deleted its record, lock
        and try count and took it out of the queue in the same step): nothing is left to do,
        and a round trip is saved per execution."""
        if job_id in self.settled:
            self.settled.discard(job_id)
            return
        await super().finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )

    def _running_here(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def _poll_and_wait(self) -> None:
        reraise_cancel()
        loop = asyncio.get_running_loop()
        began = loop.time()
        if self.wake.cursor is None:
            await self._guarded(self.wake.prime())
        await super()._poll_iteration()
        if self.job_counter < self.max_jobs:
            if await self._guarded(self.wake.wait(began + self.wait_s)):
                return
        else:
            # Busy: by the next wait the cursor would be far behind; start again at the tail.
            self.wake.cursor = None
        await asyncio.sleep(max(0.0, self.wait_s - (loop.time() - began)))

    async def _guarded(self, step: Coroutine[Any, Any, bool | None]) -> bool:
        """A wake-up step; if Redis fails it, fall back to plain polling (arq's own polls will
        report the outage)."""
        try:
            return bool(await step)
        except RedisError as exc:
            reraise_cancel()
            logger.warning("wake-up stream unavailable, polling instead: %s", exc)
            self.wake.cursor = None
            return False

    async def close(self) -> None:
        """arq's shutdown, then the wake-up connection's."""
        try:
            await super().close()
        finally:
            with contextlib.suppress(RedisError):
                await self.wake_redis.aclose()
