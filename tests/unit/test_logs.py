"""Every command's log line: the same text as logging's own formatter gives, made cheaper."""

from __future__ import annotations

import logging

import pytest

from agentfield_arq.ops.logs import FORMAT, LineFormatter


@pytest.mark.parametrize("created", [1_764_609_600.0, 1_764_609_600.999, 1_764_609_601.0005])
def test_a_line_reads_as_logging_s_default_formatter_writes_it(created: float) -> None:
    fmt = FORMAT.format(command="api")
    record = logging.LogRecord(
        "agentfield_arq.core.execution", logging.INFO, "", 0,
        "queued execution_id=%s", ("exec_1",), None,
    )  # fmt: skip
    record.created = created
    record.msecs = (created - int(created)) * 1000
    ours = LineFormatter(fmt).format(record)
    assert ours == logging.Formatter(fmt).format(record)
    assert ours.endswith(" INFO [api] agentfield_arq.core.execution: queued execution_id=exec_1")
