"""What one benchmark cell measures, and how big its batches are."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .redis_count import CommandCount

__all__ = ["QUICK", "Figures", "Plan", "percentile"]


@dataclass(frozen=True)
class Plan:
    """Batch sizes of one cell. ``load_steps``: steps submitted at once for the throughput
    figures (rounded up to whole executions); ``singles``: executions run one at a time for the
    end-to-end latency; ``half_seconds``: how long executions are submitted at half of the
    measured peak rate for the dispatch latency; ``count_steps``: steps run while ``MONITOR``
    counts Redis commands; ``timeout``: seconds one batch may take."""

    load_steps: int = 800
    singles: int = 8
    half_seconds: float = 2.0
    count_steps: int = 100
    timeout: float = 120.0

    def executions(self, steps: int, per_execution: int) -> int:
        return max(2, math.ceil(steps / per_execution))


QUICK = Plan(load_steps=100, singles=3, half_seconds=0.3, count_steps=20, timeout=30.0)


@dataclass
class Figures:
    """One cell (a shape in a mode) in one round. Times in seconds; ``None``: not measured."""

    steps_per_s: float = 0.0
    executions_per_s: float = 0.0
    e2e: list[float] = field(default_factory=list)  # one execution alone, submit to final
    dispatch: list[float] = field(default_factory=list)  # per step, at half of peak load
    commands_per_step: float | None = None  # Redis commands the workers sent, per step
    client_commands_per_step: float | None = None  # ... the submitting client sent
    evalsha_per_step: float | None = None  # of the workers' commands, EVALSHA
    lua_per_step: float | None = None  # commands run inside Lua scripts
    round_trips_per_step: float | None = None  # the workers' requests to Redis (round_trips)
    cpu_ms_per_step: float = 0.0  # worker processes' CPU during the load batch
    peak_rss_mib: float = 0.0  # the largest worker process's peak RSS
    processes: int = 1  # worker processes measured
    error: str | None = None

    def set_counts(
        self,
        count: CommandCount,
        workers: set[int],
        client: set[int],
        steps: int,
        round_trips: int | None = None,
    ) -> None:
        """Commands per step from a ``MONITOR`` count: the workers' (by their ports), the
        client's, the workers' script calls and the commands run inside scripts; and the
        workers' ``round_trips`` over the same batch, per step, where they were counted."""
        mine = count.of(workers)
        self.commands_per_step = sum(mine.values()) / steps
        self.client_commands_per_step = sum(count.of(client).values()) / steps
        self.evalsha_per_step = (mine["EVALSHA"] + mine["EVAL"]) / steps
        self.lua_per_step = sum(count.lua.values()) / steps
        if round_trips is not None:
            self.round_trips_per_step = round_trips / steps


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[min(max(round(q * 10) - 1, 0), len(cuts) - 1)]
