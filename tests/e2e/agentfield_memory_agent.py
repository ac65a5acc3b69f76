"""An agent written with AgentField's own SDK that uses the rest of its control-plane surface:
memory (values, scopes, vectors, change events), notes, discovery, restart and approvals. Run
by an interpreter that has `agentfield` installed; nothing in it knows about agentfield-arq.

AgentField 0.1.144 registers change listeners with `@app.memory.on_change(...)` from inside a
running agent (as its README shows): its module-level `@app.on_change` only marks a function,
and `Agent` subclass methods marked with it are subscribed before any event loop runs.
"""

import asyncio
import os

from agentfield import Agent

app = Agent(node_id=os.environ.get("NODE_ID", "keeper"), version="1.0.0")


@app.reasoner(tags=["memory"])
async def remember(key: str, value: dict) -> dict:
    """Set, get, list, test and delete a value in this run's scope and in the global scope."""
    await app.memory.set(key, value)
    got = await app.memory.get(key)
    exists = await app.memory.exists(key)
    missing = await app.memory.get("never.set", default="absent")
    await app.memory.global_scope.set(f"shared.{key}", value)
    shared = await app.memory.global_scope.get(f"shared.{key}")
    listed = await app.memory.workflow(app.ctx.workflow_id).list_keys()
    await app.memory.delete(key)
    return {
        "got": got,
        "exists": exists,
        "missing": missing,
        "shared": shared,
        "listed": listed,
        "after_delete": await app.memory.exists(key),
    }


@app.reasoner(tags=["memory"])
async def search(query: list) -> dict:
    """Store three vectors in this run's scope and search them."""
    for key, vector in (("east", [1.0, 0.0]), ("north", [0.0, 1.0]), ("ne", [1.0, 1.0])):
        await app.memory.set_vector(key, vector, metadata={"name": key})
    hits = await app.memory.similarity_search(query, top_k=2)
    return {"keys": [h["key"] for h in hits], "scores": [h["score"] for h in hits]}


@app.reasoner()
async def watch(pattern: str) -> dict:
    """Listen for changes of keys matching `pattern`, then change one until the change comes
    back through the memory event WebSocket (it may still be connecting)."""
    seen = asyncio.Event()
    events = []

    @app.memory.on_change(pattern)
    async def changed(event):
        events.append({"key": event.key, "action": event.action, "data": event.data})
        seen.set()

    for attempt in range(100):
        await app.memory.set(pattern.replace("*", "ping"), {"attempt": attempt})
        try:
            await asyncio.wait_for(seen.wait(), 0.2)
            break
        except TimeoutError:
            continue
    return events[0] if events else {}


@app.reasoner()
async def jot(message: str) -> dict:
    """Write a note on this execution."""
    app.note(message, tags=["e2e"])
    return {"noted": message}


@app.reasoner()
async def review(request_id: str) -> dict:
    """Pause for a person's approval, then report the decision."""
    result = await app.pause(
        approval_request_id=request_id,
        approval_request_url=f"https://review.example.com/{request_id}",
        expires_in_hours=1,
    )
    return {"decision": result.decision, "feedback": result.feedback}


@app.reasoner()
async def flaky(fail: bool = True) -> dict:
    """Fails when asked to."""
    if fail:
        raise RuntimeError("asked to fail")
    return {"ok": True}


@app.reasoner()
async def redo(execution_id: str) -> dict:
    """Restart another execution through the SDK's client, with new input."""
    return await app.client.restart_execution(
        execution_id, input_data={"fail": False}, reason="e2e"
    )


@app.reasoner()
async def find(tag: str) -> dict:
    """Discover the targets tagged `tag`."""
    found = app.discover(tags=[tag], include_input_schema=True)
    return {
        "agents": [c.agent_id for c in found.json.capabilities],
        "targets": [r.invocation_target for c in found.json.capabilities for r in c.reasoners],
        "schema": found.json.capabilities[0].reasoners[0].input_schema,
    }


if __name__ == "__main__":
    app.serve(port=int(os.environ["PORT"]), host="127.0.0.1")
