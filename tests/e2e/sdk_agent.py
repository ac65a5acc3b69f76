"""An agent written with agentfield_arq's SDK for end-to-end tests (node `sdk`), run as a process.

Each reasoner shows one behaviour: raising, returning None or a list, taking its time, calling
other nodes (by keyword or position) and reporting what `app.call` raised, using memory,
writing a note, pausing for approval.
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


@app.reasoner()
async def positional(a: int, b: int) -> Any:
    """Calls the `add` skill with positional arguments."""
    return await app.call("sdk.add", a, b=b)


@app.reasoner()
async def keep(key: str, value: dict[str, Any]) -> dict[str, Any]:
    """Sets, gets, lists, tests and deletes a value; stores and searches vectors."""
    await app.memory.set(key, value)
    got = await app.memory.get(key)
    missing = await app.memory.get("never.set", default="absent")
    context = app.memory.global_scope
    await context.set(f"shared.{key}", value)
    listed = await app.memory.list_keys("workflow")
    await app.memory.set_vector("east", [1.0, 0.0], {"name": "east"})
    await app.memory.set_vector("north", [0.0, 1.0])
    hits = await app.memory.similarity_search([1.0, 0.1], top_k=1)
    await app.memory.delete(key)
    return {
        "got": got,
        "missing": missing,
        "shared": await context.get(f"shared.{key}"),
        "listed": listed,
        "nearest": hits[0].key,
        "after_delete": await app.memory.exists(key),
    }


@app.reasoner()
async def jot(message: str) -> str:
    """Writes a note on its execution."""
    app.note(message, ["sdk"])
    return message


@app.reasoner()
async def review(request_id: str) -> dict[str, Any]:
    """Waits for a person's approval and reports the decision."""
    result = await app.pause(request_id, f"https://review.example.com/{request_id}", 1)
    return {"decision": result.decision, "feedback": result.feedback}


@app.skill()
def add(a: int, b: int) -> int:
    """A skill: answered inline."""
    return a + b


if __name__ == "__main__":
    app.run()
