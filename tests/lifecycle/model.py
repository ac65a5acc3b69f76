"""The pure-Python model of the lifecycle: what each execution and delivery should be, and
the constants that bound the machine."""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.keys import NON_TERMINAL_GRACE_S
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.status import TERMINAL_STATUSES

NODE = "mnode"
OTHER_NODE = "mother"
NAME = "think"
OTHER_NAME = "absent"
T0_MS = 1_700_000_000_000
DEADLINE_S = 10.0
MAX_RUNS = 4
WORKERS = 2
COURIERS = 2
# What agents answer: results and errors from small sets, so that identical repeats happen.
RESULTS = (b"null", b'{"answer":42}', b"[1,2]")
ERRORS = ("agent answered 400: bad input", "agent reported failed")
LOCK_TTL_MS = 60_000
RETENTION_S = 7200
# Below the most jobs the machine can queue (a run job and a delivery per execution), so that
# `queue_full` is reached.
MAX_QUEUED = 4
# One call slot per node, so that two workers contend for it (node_slot.lua).
NODE_SLOTS = 1
# A pause longer than any deadline plus the grace period of a non-terminal record.
PAUSE_MS = (NON_TERMINAL_GRACE_S + int(DEADLINE_S)) * 1000
PAUSE_STEP = 16


def model_settings(base: Settings) -> Settings:
    """The tier's settings with a short deadline and a short retry schedule (3 attempts a
    round), so that short sequences reach timeouts and dead deliveries."""
    return msgspec.structs.replace(
        base,
        execution_deadline_s=DEADLINE_S,
        retention_s=RETENTION_S,
        max_queued=MAX_QUEUED,
        node_max_in_flight=NODE_SLOTS,
        webhook_retry_schedule_s="1,2",
    )


class Backend:
    """How a tier gives the machine a Redis: `open` returns an empty database, in the loop
    that calls it; `close` releases it."""

    def __init__(self, open_: Callable[[], Awaitable[Redis]], settings: Settings) -> None:
        self.open = open_
        self.settings = model_settings(settings)
        self.sequences = 0
        self.steps = 0
        self.outcomes: collections.Counter[str] = collections.Counter()


@dataclass
class Delivery:
    """The model of one webhook delivery (webhook_begin/record/redrive.lua)."""

    state: str = "pending"
    attempts: int = 0
    round: int = 0
    records: int = 0
    delivered: bool = False


@dataclass
class Run:
    """The model of one execution (create/claim/await_callback/progress/finish.lua)."""

    id: str
    kind: str
    webhook: bool
    deadline_ms: int
    node: str = NODE
    deferrals: int = 0
    # Its current run job id (the execution id until a hand-back gives it a fresh one) and
    # the hand-backs that spent no attempt (requeue.lua's `uncharged`).
    job: str = ""
    uncharged: int = 0
    status: str = "queued"
    attempt: int = 0
    phase: str | None = None
    started: bool = False
    digest: tuple[str, str, str] | None = None
    doc: bytes | None = None
    events: list[str] = field(default_factory=lambda: ["queued"])
    in_deadlines: bool = True
    expired: bool = False
    delivery: Delivery | None = None

    finished_ms: int | None = None

    def __post_init__(self) -> None:
        self.job = self.job or self.id

    @property
    def terminal(self) -> bool:
        """Whether the model holds it terminal."""
        return self.status in TERMINAL_STATUSES

    @property
    def expires_ms(self) -> int:
        """When Redis drops the record: the retention after it ended, else the grace period
        after its deadline."""
        if self.finished_ms is not None:
            return self.finished_ms + RETENTION_S * 1000
        return self.deadline_ms + NON_TERMINAL_GRACE_S * 1000


def live(r: Run) -> bool:
    """Its record still exists."""
    return not r.expired


def unfinished(r: Run) -> bool:
    """Its record exists and is not terminal."""
    return not r.expired and not r.terminal
