"""Summaries of repeated measurements, and the figures the report prints.

Every figure is measured several times; we keep each sample, and summarise by the median with
the min and max beside it. A target compares our result with a baseline measured in the same
run: the ratio is taken per run (ours_i / baseline_i, measured back to back) and summarised the
same way, so that the machine's drift over the run cancels out.
"""

from __future__ import annotations

import operator
import statistics
from collections.abc import Sequence

import msgspec


class Spread(msgspec.Struct, kw_only=True):
    """Median, min and max of some samples, and the samples themselves."""

    median: float
    min: float
    max: float
    samples: list[float]


def spread(samples: Sequence[float]) -> Spread:
    """Summarise samples (at least one)."""
    values = [float(v) for v in samples]
    return Spread(
        median=statistics.median(values), min=min(values), max=max(values), samples=values
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0.0 of nothing)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class Target(msgspec.Struct, kw_only=True):
    """`ratio <op> limit`, e.g. ratio >= 0.7; `text` is how the table states it."""

    op: str
    limit: float
    text: str

    def met(self, value: float) -> bool:
        """Whether the (median) ratio meets the target."""
        compare = {">=": operator.ge, "<=": operator.le}[self.op]
        return bool(compare(value, self.limit))


class Figure(msgspec.Struct, kw_only=True):
    """One row of the table."""

    key: str
    title: str
    unit: str
    ours: Spread
    baseline: Spread | None = None
    ratio: Spread | None = None
    ratio_of: str = ""
    target: Target | None = None
    met: bool | None = None
    note: str = ""


def figure(
    key: str,
    title: str,
    unit: str,
    ours: Sequence[float],
    baseline: Sequence[float] | None = None,
    *,
    ratio: Sequence[float] | None = None,
    ratio_of: str = "ours / baseline",
    target: Target | None = None,
    note: str = "",
) -> Figure:
    """Build a figure; without an explicit `ratio` it is ours_i / baseline_i per run."""
    if ratio is None and baseline is not None:
        ratio = [o / b for o, b in zip(ours, baseline, strict=True) if b]
    ratio_spread = spread(ratio) if ratio else None
    return Figure(
        key=key,
        title=title,
        unit=unit,
        ours=spread(ours),
        baseline=spread(baseline) if baseline is not None else None,
        ratio=ratio_spread,
        ratio_of=ratio_of if ratio_spread else "",
        target=target,
        met=target.met(ratio_spread.median) if target and ratio_spread else None,
        note=note,
    )
