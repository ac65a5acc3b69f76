"""How every command logs: one line a record on stderr, `date time,ms LEVEL [command] logger:
message`, made cheaply, since the API writes one INFO line per execution it queues.

With logging's defaults that line cost ~20 us (bench/, 2 cores), ~6% of an enqueue: each record
looked up its caller's file and line, its thread and process, and formatted the date and time
anew. None of those is in the line. logging's documented optimisations turn the lookups off,
and each second's date and time is formatted once; every line is still written and flushed as
it is logged.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s [{command}] %(name)s: %(message)s"
# Per-request lines of these libraries drown ours (which name every execution_id).
NOISY = ("httpx", "arq.worker")


class LineFormatter(logging.Formatter):
    """logging's Formatter with its default date format, each second formatted once."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """`2026-12-01 17:20:00,123`, as logging's default, in local time."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{_local_second(int(record.created))},{int(record.msecs):03d}"


@functools.lru_cache(maxsize=4)
def _local_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def configure(level: str, command: str, stream: TextIO | None = None) -> None:
    """Log records of `level` and above to `stream` (stderr), each line naming `command`."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup: the line shows no file, line or function
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter(FORMAT.format(command=command)))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
