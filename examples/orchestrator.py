"""The seed's orchestrator, exactly as written for AgentField but for its import line.

It fans out to finance, research and analytics at once and combines their sections.
"""

import asyncio

from agentfield_arq import Agent  # the only line that differs from AgentField

app = Agent(node_id="orchestrator", version="1.0.0")


@app.reasoner()
async def generate_quarterly_report(quarter: str) -> dict:
    financial, market, customer = await asyncio.gather(
        app.call("finance.deep_analysis", quarter=quarter),
        app.call("research.market_trends", quarter=quarter),
        app.call("analytics.churn_report", quarter=quarter),
    )
    return {"sections": [financial, market, customer]}


if __name__ == "__main__":
    app.run()
