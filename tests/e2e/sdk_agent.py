"""An agent written with agentfield_arq's SDK for end-to-end tests (node `sdk`), run as a process.

Each reasoner shows one behaviour: raising, returning None or a list, taking its time, calling
other nodes and reporting what `app.call` raised.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentfield_arq import Agent, ExecutionError

app = Agent(node_id="sdk", version="1.0.0", shutdown_timeout_s=20)


@app.reasoner()
async def explode(reason: str = "model refused") -> dict[str, Any]:
    """Always raises."""
    raise RuntimeError(reason)


@app.reasoner()
async def nothing() -> None:
    """Returns None."""
    return None


@app.reasoner()
async def listing() -> list[Any]:
    """Returns a list, not an object."""
    return [1, "two", None]


@app.reasoner()
async def slow(s: float) -> dict[str, float]:
    """Takes `s` seconds."""
    await asyncio.sleep(s)
    return {"slept": s}


@app.reasoner()
async def relay(target: str, payload: dict[str, Any]) -> Any:
    """Calls `target` with `payload` and returns what it returned."""
    return await app.call(target, **payload)


@app.reasoner()
async def catch(target: str) -> dict[str, Any]:
    """Calls `target` and reports the exception `app.call` raised."""
    try:
        value = await app.call(target)
    except ExecutionError as exc:
        return {"raised": type(exc).__name__, "execution_id": exc.execution_id, "error": exc.error}
    return {"raised": None, "value": value}


@app.reasoner()
async def work(log: str) -> None:
    """Works until cancelled: appends `tick <unix time>` to the file `log` every 20 ms, and
    `stopped <unix time>` once cancelled."""
    with open(log, "a") as out:  # noqa: ASYNC230  # a few short lines, written as they happen
        try:
            while True:
                out.write(f"tick {time.time()}\n")
                out.flush()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            out.write(f"stopped {time.time()}\n")
            out.flush()
            raise


@app.skill()
def add(a: int, b: int) -> int:
    """A skill: answered inline."""
    return a + b


if __name__ == "__main__":
    app.run()
