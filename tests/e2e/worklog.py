"""The file a `work` reasoner (tests/e2e/sdk_agent.py, agentfield_agent.py) writes as it works:
`tick <unix time>` every 20 ms, then `stopped <unix time>` once its task is cancelled."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.waits import poll

WORK_TIMEOUT_S = 20.0


def lines(log: Path) -> list[str]:
    """What the reasoner has written so far."""
    return log.read_text().splitlines() if log.exists() else []


def working(log: Path) -> None:
    """Return once the reasoner has started working (written nothing announces it: polled)."""
    poll(lambda: any(line.startswith("tick") for line in lines(log)), f"ticks in {log}", 20)


def stopped_at(log: Path) -> float:
    """The unix time at which the reasoner saw its cancellation; fails if it never does, or if
    it wrote a tick after it."""
    poll(lambda: any(line.startswith("stopped") for line in lines(log)), f"stop in {log}", 20)
    written = lines(log)
    assert written[-1].startswith("stopped"), f"it worked on after it stopped: {written[-3:]}"
    return float(written[-1].split()[1])
