"""The analytics node of the seed's quarterly report: customer churn for a quarter.

Run it on its own with `python examples/analytics.py` ($AGENTFIELD_SERVER names the control
plane; the run command starts it for you).
"""

import asyncio

from agentfield_arq import Agent

app = Agent(node_id="analytics", version="1.0.0")


@app.reasoner()
async def churn_report(quarter: str, segment: str = "all") -> dict:
    """Churn rate and accounts at risk for the quarter."""
    await asyncio.sleep(0.4)  # the time a model call would take
    return {
        "section": "customer",
        "quarter": quarter,
        "segment": segment,
        "churn_pct": 3.1,
        "at_risk_accounts": 17,
    }


if __name__ == "__main__":
    app.run()
