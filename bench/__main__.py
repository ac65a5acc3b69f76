"""`python -m bench [--quick] [--runs N] [--only a,b] [--out DIR]`: measure, print, write.

Starts its own Redis on a free port and every process it measures, on 127.0.0.1 only, and
stops them all before it returns. Results: a Markdown table on stdout, `results.json` and
`results.png` in the output folder (bench/results/ by default, which git ignores), with the
logs of every process under `run/logs/`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench import (
    batch,
    dashboard,
    drain,
    enqueue,
    fanout,
    latency,
    listing,
    memory,
    monitor,
    report,
    slow,
    waiters,
)
from bench.harness import Harness
from bench.plan import FULL, QUICK, Plan
from bench.stats import Figure

logger = logging.getLogger("bench")

SECTIONS = (
    "enqueue", "drain", "slow", "latency", "batch", "listing", "fanout", "dashboard", "waiters",
    "memory", "commands",
)  # fmt: skip
RESULTS = Path(__file__).resolve().parent / "results"


def machine(h: Harness) -> dict[str, Any]:
    """What the figures were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    server = h.redis.info("server")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "redis": f"valkey {server.get('valkey_version', server.get('redis_version'))}",
        "load_average_at_start": os.getloadavg(),
    }


async def measure(plan: Plan, sections: set[str], workdir: Path) -> dict[str, Any]:
    """Run the chosen sections; everything measured, as one JSON-able dict. A section that
    fails is reported under "errors" and the others still run."""
    out: dict[str, Any] = {
        "plan": plan, "figures": [], "drains": [], "checkpoints": [], "commands": {}, "errors": {},
    }  # fmt: skip
    with Harness(workdir) as h:
        out["machine"] = machine(h)
        agent_url = await h.start_agent()
        started = time.monotonic()
        for section in SECTIONS:
            if section not in sections:
                continue
            try:
                await _section(section, h, plan, agent_url, out)
            except Exception as exc:  # keep what the other sections measure
                logger.exception("section %s failed", section)
                out["errors"][section] = f"{type(exc).__name__}: {exc}"
        out["machine"]["load_average_at_end"] = os.getloadavg()
        out["seconds"] = round(time.monotonic() - started)
    return out


async def _section(section: str, h: Harness, plan: Plan, url: str, out: dict[str, Any]) -> None:
    figures: list[Figure] = out["figures"]
    if section == "enqueue":
        figures += await enqueue.measure(h, plan, url)
    elif section == "drain":
        found, out["drains"] = await drain.measure(h, plan, url)
        figures += found
    elif section == "slow":
        found, drains = await slow.measure(h, plan, url)
        figures += found
        out["drains"] += drains
    elif section == "latency":
        figures += await latency.measure(h, plan, url)
    elif section == "batch":
        figures += await batch.measure(h, plan, url)
    elif section == "listing":
        figures += await listing.measure(h, plan, url)
    elif section == "fanout":
        figures += await fanout.measure(h, plan, url)
    elif section == "dashboard":
        figures += await dashboard.measure(h, plan, url)
    elif section == "waiters":
        figures += await waiters.measure(h, plan)
    elif section == "memory":
        found, out["checkpoints"] = await memory.measure(h, plan, url)
        figures += found
    elif section == "commands":
        out["commands"] = await monitor.measure(h, plan, url)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--runs", type=int, help="repetitions of each figure")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and PNG")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy flame graphs of the API and a worker"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = msgspec.structs.replace(plan, runs=args.runs)
    if args.profile:
        plan = msgspec.structs.replace(plan, profile=True)
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    # The processes' logs and Redis' folder stay beside the results, for when a run fails.
    workdir = args.out / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results = asyncio.run(measure(plan, sections, workdir))
    publish(results, args.out)
    return 1 if results["errors"] else 0


def publish(results: dict[str, Any], out: Path) -> None:
    """Print the table and the capacity model; write results.json and results.png."""
    figures: list[Figure] = results["figures"]
    m = results["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['redis']}; "
          f"load average {m['load_average_at_start'][0]:.2f} at start, "
          f"{m['load_average_at_end'][0]:.2f} at end; {results['seconds']} s.\n")  # fmt: skip
    print(report.table(figures))
    print("\n" + report.notes(figures))
    for section, error in results["errors"].items():
        print(f"\nsection {section} FAILED: {error} (logs: {out / 'run' / 'logs'})")
    if results["commands"]:
        print("\nRedis commands per execution (MONITOR) and capacity:\n")
        print(report.capacity(results["commands"], figures))
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "results.json", results)
    report.chart(out / "results.png", figures, results["drains"], results["checkpoints"])
    print(f"\nwrote {out / 'results.json'} and {out / 'results.png'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
