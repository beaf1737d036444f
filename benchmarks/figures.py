"""Medians over rounds and the markdown tables ``python -m benchmarks`` prints."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from .measure import Figures, percentile

__all__ = ["Cell", "detail_table", "side_by_side_table", "summarise"]


@dataclass
class Cell:
    """One shape in one mode: medians over the rounds that succeeded."""

    shape: str
    mode: str
    rounds: int
    steps_per_s: float
    executions_per_s: float
    e2e_p50: float
    e2e_p99: float
    dispatch_p50: float
    dispatch_p99: float
    commands: float | None
    client_commands: float | None
    evalsha: float | None
    lua: float | None
    round_trips: float | None  # the workers' requests to Redis per step (round_trips)
    cpu_ms: float
    rss_mib: float
    processes: int
    error: str | None = None


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _optional(runs: list[Figures], get: Callable[[Figures], float | None]) -> float | None:
    values = [v for v in map(get, runs) if v is not None]
    return statistics.median(values) if values else None


def summarise(shape: str, mode: str, runs: list[Figures]) -> Cell:
    ok = [r for r in runs if r.error is None]
    errors = [r.error for r in runs if r.error is not None]
    if not ok:
        nan = float("nan")
        failed = errors[0] if errors else "not run"
        return Cell(
            shape,
            mode,
            0,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            None,
            None,
            None,
            None,
            None,
            nan,
            nan,
            0,
            failed,
        )
    return Cell(
        shape=shape,
        mode=mode,
        rounds=len(ok),
        steps_per_s=_median([r.steps_per_s for r in ok]),
        executions_per_s=_median([r.executions_per_s for r in ok]),
        e2e_p50=_median([percentile(r.e2e, 50) for r in ok]),
        e2e_p99=_median([percentile(r.e2e, 99) for r in ok]),
        dispatch_p50=_median([percentile(r.dispatch, 50) for r in ok]),
        dispatch_p99=_median([percentile(r.dispatch, 99) for r in ok]),
        commands=_optional(ok, lambda r: r.commands_per_step),
        client_commands=_optional(ok, lambda r: r.client_commands_per_step),
        evalsha=_optional(ok, lambda r: r.evalsha_per_step),
        lua=_optional(ok, lambda r: r.lua_per_step),
        round_trips=_optional(ok, lambda r: r.round_trips_per_step),
        cpu_ms=_median([r.cpu_ms_per_step for r in ok]),
        rss_mib=max(r.peak_rss_mib for r in ok),
        processes=ok[0].processes,
        error=f"{len(errors)} round(s) failed: {errors[0]}" if errors else None,
    )


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def detail_table(cells: list[Cell]) -> str:
    head = (
        "| shape | mode | rounds | steps/s | executions/s | e2e p50 / p99 ms "
        "| dispatch p50 / p99 ms (½ peak) | Redis cmds/step: workers (client) "
        "| EVALSHA/step | in-Lua cmds/step | Redis round trips/step: workers "
        "| worker CPU ms/step | peak RSS MiB (processes) |"
    )
    lines = [
        head,
        "| --- | --- " + "| ---: " * 11 + "|",
    ]
    for c in cells:
        if c.rounds == 0:
            lines.append(f"| {c.shape} | {c.mode} | 0 | {c.error} | | | | | | | | | |")
            continue
        commands = "—" if c.commands is None else f"{c.commands:.1f} ({_num(c.client_commands)})"
        lines.append(
            f"| {c.shape} | {c.mode} | {c.rounds} | {c.steps_per_s:,.0f} "
            f"| {_num(c.executions_per_s)} | {_ms(c.e2e_p50)} / {_ms(c.e2e_p99)} "
            f"| {_ms(c.dispatch_p50)} / {_ms(c.dispatch_p99)} "
            f"| {commands} | {_num(c.evalsha)} | {_num(c.lua)} | {_num(c.round_trips, 2)} "
            f"| {c.cpu_ms:.2f} "
            f"| {c.rss_mib:.0f} ({c.processes}) |"
        )
    return "\n".join(lines)


def _best_celery(cells: list[Cell], shape: str) -> Cell | None:
    mine = [c for c in cells if c.shape == shape and c.mode.startswith("celery") and c.rounds]
    return max(mine, key=lambda c: c.steps_per_s, default=None)


def side_by_side_table(cells: list[Cell], shapes: list[str], modes: list[str]) -> str:
    """Steps/s and single-execution p50 per shape; in brackets the ratio to Celery's best pool."""
    flow = [m for m in modes if not m.startswith("celery")]
    lines = [
        "| shape | Celery (best pool) | " + " | ".join(f"Flowloom {m}" for m in flow) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in flow) + " |",
    ]
    for shape in shapes:
        celery = _best_celery(cells, shape)
        row = [shape, "—" if celery is None else _entry(celery, None) + f" ({celery.mode[7:]})"]
        for mode in flow:
            cell = next((c for c in cells if c.shape == shape and c.mode == mode), None)
            row.append("—" if cell is None or not cell.rounds else _entry(cell, celery))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _entry(cell: Cell, celery: Cell | None) -> str:
    text = f"{cell.steps_per_s:,.0f} steps/s"
    if celery is not None:
        text += f" ({cell.steps_per_s / celery.steps_per_s:.2f}x)"
    text += f", p50 {_ms(cell.e2e_p50)} ms"
    if celery is not None and celery.e2e_p50 > 0:
        text += f" ({cell.e2e_p50 / celery.e2e_p50:.2f}x)"
    return text
