"""The finance node of the seed's quarterly report: revenue and margin for a quarter.

Run it on its own with `python examples/finance.py` ($AGENTFIELD_SERVER names the control
plane; the run command starts it for you).
"""

import asyncio

from agentfield_arq import Agent

app = Agent(node_id="finance", version="1.0.0")

# Stand-ins for what a model would work out from the quarter's books.
GROWTH_PCT = {"Q1": 8.1, "Q2": 10.7, "Q3": 12.4, "Q4": 9.6}


@app.reasoner()
async def deep_analysis(quarter: str) -> dict:
    """Revenue growth and operating margin for the quarter."""
    await asyncio.sleep(0.6)  # the time a model call would take
    return {
        "section": "financial",
        "quarter": quarter,
        "revenue_growth_pct": GROWTH_PCT.get(quarter.upper(), 7.5),
        "margin_pct": 31.0,
    }


@app.skill(tags=["format"])
def format_currency(amount: float, currency: str = "USD") -> str:
    """An amount as a report would print it."""
    return f"{amount:,.2f} {currency}"


if __name__ == "__main__":
    app.run()
