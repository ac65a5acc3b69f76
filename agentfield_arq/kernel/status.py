"""The lifecycle of an execution, the words agents may use for it, and what a target names."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """The lifecycle of an execution; the last four are terminal. `waiting`: the agent paused it
    for a person's approval (or for a child that waits); no worker slot is held meanwhile."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMEOUT})
# What batch-status answers for an id it does not know (not a lifecycle state).
NOT_FOUND = "not_found"
# What batch-status answers for an id whose record expired after retention (not a state either).
EXPIRED = "expired"

_ALIASES = {
    "success": Status.SUCCEEDED,
    "successful": Status.SUCCEEDED,
    "completed": Status.SUCCEEDED,
    "complete": Status.SUCCEEDED,
    "done": Status.SUCCEEDED,
    "ok": Status.SUCCEEDED,
    "error": Status.FAILED,
    "failure": Status.FAILED,
    "errored": Status.FAILED,
    "canceled": Status.CANCELLED,
    "cancel": Status.CANCELLED,
    "timed_out": Status.TIMEOUT,
    "in_progress": Status.RUNNING,
    "processing": Status.RUNNING,
    "wait": Status.QUEUED,
    "waiting": Status.QUEUED,
}


# Every word a report may carry, as documented (normalise_status also takes other spellings).
STATUS_WORDS = (*(s.value for s in Status), *_ALIASES)


def normalise_status(word: str) -> Status | None:
    """Map a status word as AgentField does (`completed` -> succeeded); None if unknown."""
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return Status(key)
    except ValueError:
        return None


class TargetKind(enum.StrEnum):
    """What a target names on its node."""

    REASONER = "reasoner"
    SKILL = "skill"
