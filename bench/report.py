"""The outputs of a run: the table (Markdown, printed and pasted into the README), the capacity
model, the results as JSON, and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from bench.drain import Drain
from bench.memory import Checkpoint
from bench.monitor import Commands
from bench.stats import Figure, Spread


def number(value: float) -> str:
    """A figure with as many digits as its size deserves."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(spread: Spread | None) -> str:
    """`median [min-max]`, or just the value when there is one sample."""
    if spread is None:
        return ""
    if len(spread.samples) == 1:
        return number(spread.median)
    return f"{number(spread.median)} [{number(spread.min)}-{number(spread.max)}]"


def table(figures: list[Figure]) -> str:
    """The results as a Markdown table: median [min-max] of the runs."""
    lines = [
        "| figure | unit | ours | baseline | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = f"{cell(f.ratio)} ({f.ratio_of})" if f.ratio else ""
        target = f.target.text if f.target else ""
        verdict = {True: "met", False: "**missed**", None: ""}[f.met]
        row = [f.title, f.unit, cell(f.ours), cell(f.baseline), ratio, target, verdict]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def notes(figures: list[Figure]) -> str:
    """One line per figure that carries a note (how it was measured)."""
    return "\n".join(f"- {f.title}: {f.note}" for f in figures if f.note)


def capacity(commands: dict[str, Commands], figures: list[Figure]) -> str:
    """Redis commands and main-thread CPU per execution, and what one primary can sustain."""
    lines = ["| phase | client commands | script commands | top client commands |",
             "|---|---|---|---|"]  # fmt: skip
    for phase, c in commands.items():
        top = sorted(c.client.items(), key=lambda kv: -kv[1])[:8]
        listed = ", ".join(f"{name} {n:.2f}" for name, n in top)
        lines.append(f"| {phase} | {c.client_total:.1f} | {c.script_total:.1f} | {listed} |")
    by_key = {f.key: f for f in figures}
    if "enqueue_redis_cpu" in by_key and "run_redis_cpu" in by_key:
        enqueue_cpu_us = by_key["enqueue_redis_cpu"].ours.median
        run_us = by_key["run_redis_cpu"].ours.median
        total = enqueue_cpu_us + run_us
        lines += [
            "",
            f"Redis main-thread CPU per execution: {enqueue_cpu_us:.0f} µs to enqueue + "
            f"{run_us:.0f} µs to run = {total:.0f} µs, so one Redis primary (one core for its "
            f"main thread) saturates near {1e6 / total:,.0f} executions/s; plan for "
            f"{0.7e6 / total:,.0f}/s to keep it 70% busy.",
        ]
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Everything measured, with every sample."""
    path.write_text(json.dumps(msgspec.to_builtins(payload), indent=2) + "\n")


def chart(path: Path, figures: list[Figure], drains: list[Drain], points: list[Checkpoint]) -> None:
    """A PNG: throughput, scaling, latency, targets, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {f.key: f for f in figures}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle("agentfield-arq benchmarks: ours vs same-run baselines (median of runs, min-max)")
    _pair_bars(axes[0][0], by_key, ["enqueue_rps"], "requests/s", "async enqueue throughput")
    _scaling(axes[0][1], drains)
    latencies = ["enqueue_p50", "enqueue_p99", "e2e_p50", "e2e_p99", "batch_status"]
    _pair_bars(axes[0][2], by_key, latencies, "ms", "latency (lower is better)")
    _targets(axes[1][0], figures)
    _memory(axes[1][1], points)
    axes[1][2].axis("off")
    axes[1][2].text(0, 1, "\n".join(_caption(figures)), va="top", family="monospace", size=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SHORT = {
    "enqueue_rps": "enqueue",
    "enqueue_p50": "enqueue\np50",
    "enqueue_p99": "enqueue\np99",
    "e2e_p50": "end to end\np50 (idle)",
    "e2e_p99": "end to end\np99 (idle)",
    "batch_status": "batch status\n1,000 ids",
}


def _errors(spreads: list[Spread | None]) -> list[list[float]]:
    low = [s.median - s.min if s else 0.0 for s in spreads]
    high = [s.max - s.median if s else 0.0 for s in spreads]
    return [low, high]


def _pair_bars(ax: Any, by_key: dict[str, Figure], keys: list[str], unit: str, title: str) -> None:
    shown = [by_key[k] for k in keys if k in by_key]
    x = list(range(len(shown)))
    ours = [f.ours for f in shown]
    base = [f.baseline for f in shown]
    ax.bar([i - 0.2 for i in x], [s.median for s in ours], 0.4, yerr=_errors(list(ours)),
           label="ours", color="tab:blue", capsize=3)  # fmt: skip
    ax.bar([i + 0.2 for i in x], [s.median if s else 0 for s in base], 0.4,
           yerr=_errors(base), label="baseline", color="tab:gray", capsize=3)  # fmt: skip
    ax.set_xticks(x, [SHORT.get(f.key, f.title) for f in shown], fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)


def _scaling(ax: Any, drains: list[Drain]) -> None:
    for kind, color in (("ours", "tab:blue"), ("baseline", "tab:gray")):
        counts = sorted({d.workers for d in drains if d.kind == kind})
        rates = [[d.rate for d in drains if d.kind == kind and d.workers == n] for n in counts]
        medians = [sorted(r)[len(r) // 2] for r in rates]
        ax.errorbar(counts, medians, marker="o", color=color, label=kind, capsize=3,
                    yerr=[[m - min(r) for m, r in zip(medians, rates, strict=True)],
                          [max(r) - m for m, r in zip(medians, rates, strict=True)]])  # fmt: skip
    ax.set_title("drain throughput by worker processes", fontsize=9)
    ax.set_xlabel("worker processes")
    ax.set_xticks(sorted({d.workers for d in drains}))
    ax.set_ylabel("executions/s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)


def _targets(ax: Any, figures: list[Figure]) -> None:
    targeted = [f for f in figures if f.target and f.ratio]
    # Headroom: how far past its limit each ratio is (>= 1 means the target is met).
    scores = []
    for f in targeted:
        assert f.target is not None
        assert f.ratio is not None
        r = f.ratio.median
        scores.append(r / f.target.limit if f.target.op == ">=" else f.target.limit / r)
    colors = ["tab:green" if s >= 1 else "tab:red" for s in scores]
    ax.barh([f.title for f in targeted], scores, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_title("targets: headroom (>= 1 is met)", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()


def _memory(ax: Any, points: list[Checkpoint]) -> None:
    if not points:
        ax.axis("off")
        return
    x = [p.executions for p in points]
    ax.plot(x, [p.used_memory / 2**20 for p in points], marker="o", label="Redis used_memory")
    ax.set_xlabel("retained executions")
    ax.set_ylabel("Redis used_memory (MB)")
    rss = ax.twinx()
    for n in range(len(points[0].rss_kb)):
        rss.plot(x, [p.rss_kb[n] / 1024 for p in points], marker="s", color=f"C{n + 1}",
                 label=f"worker {n + 1} RSS")  # fmt: skip
    top = max(kb for p in points for kb in p.rss_kb) / 1024
    rss.set_ylim(0, top * 1.3)
    rss.set_ylabel("worker RSS (MB)")
    ax.set_title("memory as executions pile up", fontsize=9)
    lines = ax.get_legend_handles_labels()
    more = rss.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")


def _caption(figures: list[Figure]) -> list[str]:
    lines = ["target ratios (median of runs)", ""]
    for f in figures:
        if f.target and f.ratio:
            verdict = "met" if f.met else "MISSED"
            lines.append(f"{f.title[:34]:34} {number(f.ratio.median):>7} {verdict}")
    by_key = {f.key: f for f in figures}
    if "enqueue_redis_cpu" in by_key and "run_redis_cpu" in by_key:
        total = by_key["enqueue_redis_cpu"].ours.median + by_key["run_redis_cpu"].ours.median
        lines += ["", f"Redis main-thread CPU per execution: {total:.0f} us",
                  f"one Redis primary saturates near {1e6 / total:,.0f} executions/s"]  # fmt: skip
    return lines
