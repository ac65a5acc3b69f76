"""The research node of the seed's quarterly report: market trends for a quarter.

Run it on its own with `python examples/research.py` ($AGENTFIELD_SERVER names the control
plane; the run command starts it for you).
"""

import asyncio

from agentfield_arq import Agent

app = Agent(node_id="research", version="1.0.0")


@app.reasoner()
async def market_trends(quarter: str) -> dict:
    """The trends that moved the market in the quarter, with a confidence."""
    await asyncio.sleep(0.5)  # the time a model call would take
    return {
        "section": "market",
        "quarter": quarter,
        "trends": ["AI agent adoption rising", "consolidation among mid-size vendors"],
        "confidence": 0.82,
    }


if __name__ == "__main__":
    app.run()
