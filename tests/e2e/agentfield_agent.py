"""An agent written with AgentField's own SDK (the `agentfield` package), run by an interpreter
that has it installed. Nothing in it knows about agentfield-arq: the control plane is named by
$AGENTFIELD_SERVER, as for any AgentField agent, and every SDK default is left on.
"""

import asyncio
import os
import time

from agentfield import Agent

app = Agent(node_id=os.environ.get("NODE_ID", "classic"), version="1.0.0")


@app.reasoner()
async def analyze(ticker: str, days: int = 5) -> dict:
    """Analyze a ticker."""
    return {"ticker": ticker, "days": days, "score": 0.5}


@app.reasoner()
async def explode(reason: str = "boom") -> dict:
    """Always raises."""
    raise ValueError(reason)


@app.reasoner()
async def nothing() -> dict:
    """Returns None."""
    return None


@app.skill(tags=["fmt"])
def format_report(title: str) -> str:
    """Format a report title."""
    return f"# {title}"


@app.reasoner()
async def quarterly(quarter: str) -> dict:
    """The seed's orchestrator, written against AgentField's SDK."""
    financial, market, customer = await asyncio.gather(
        app.call("finance.deep_analysis", quarter=quarter),
        app.call("research.market_trends", quarter=quarter),
        app.call("analytics.churn_report", quarter=quarter),
    )
    return {"sections": [financial, market, customer]}


@app.reasoner()
async def catch(target: str) -> dict:
    """Calls `target` and reports what `app.call` raised."""
    try:
        value = await app.call(target)
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}
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


if __name__ == "__main__":
    app.serve(port=int(os.environ["PORT"]), host="127.0.0.1")
