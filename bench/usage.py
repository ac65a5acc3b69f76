"""What Redis did during a measurement: commands by name, CPU time, memory (INFO deltas).

`INFO commandstats` counts every command Redis ran, including the ones our Lua scripts run
inside an EVALSHA; the CPU figure is the main thread's, the one that bounds a Redis primary.
"""

from __future__ import annotations

import msgspec
import redis


class Usage(msgspec.Struct, kw_only=True):
    """A snapshot, or the difference between two."""

    calls: dict[str, int]
    cpu_s: float
    used_memory: int

    @property
    def commands(self) -> int:
        """All commands, those run by scripts included."""
        return sum(self.calls.values())


def snapshot(client: redis.Redis) -> Usage:
    """Read INFO commandstats, cpu and memory of our Redis."""
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    memory = client.info("memory")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return Usage(
        calls=calls,
        cpu_s=float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]),
        used_memory=int(memory["used_memory"]),
    )


def since(before: Usage, after: Usage) -> Usage:
    """What happened between two snapshots."""
    calls = {
        name: n - before.calls.get(name, 0)
        for name, n in after.calls.items()
        if n - before.calls.get(name, 0) > 0
    }
    return Usage(
        calls=calls,
        cpu_s=after.cpu_s - before.cpu_s,
        used_memory=after.used_memory - before.used_memory,
    )
