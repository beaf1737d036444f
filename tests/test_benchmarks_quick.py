"""``python -m benchmarks --quick`` runs and prints sane tables (structure and positive numbers,
never speed: timings belong to the benchmark, not to the suite). About 5 s on a quiet machine:
one embedded round of three shapes (a fan-out of 10 rather than 50, to stay fast), through the
same ``main`` as ``python -m benchmarks`` but in this process, so the suite does not pay for
another interpreter importing the engine."""

from __future__ import annotations

import asyncio
import math
import sys

import pytest
import redis.asyncio as aioredis
from support import require_kafka, require_redis

from benchmarks.__main__ import main
from benchmarks.commit_bench import measure as measure_commits
from benchmarks.latency import PARTS as LATENCY_PARTS
from benchmarks.latency import run as latency_run
from benchmarks.opcodes import main as opcodes_main
from benchmarks.rss import main as rss_main

SHAPES = ("chain-10", "diamond", "fanout-10")
ARGS = ["--quick", "--modes", "embedded", "--no-celery", "--shapes", ",".join(SHAPES)]


def run_quick(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(ARGS) == 0
    return capsys.readouterr().out


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the markdown table under ``## heading``, as lists of cells."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.strip().splitlines() if ln.startswith("|")]
    rows = [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines]
    assert set(rows[1][0]) <= {"-", ":"}, "the second line separates the header"
    return rows[2:]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_quick_embedded_run_prints_one_measured_row_per_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run_quick(capsys)
    assert out.startswith("commit ")
    rows = table_rows(out, "Every cell")
    assert [(r[0], r[1]) for r in rows] == [(s, "embedded") for s in SHAPES]
    for shape, _, rounds, steps, executions, e2e, dispatch, *_, cpu, rss in rows:
        assert rounds == "1", shape
        assert number(steps) > 0 and number(executions) > 0, shape
        assert _close(number(steps) / number(executions), SHAPE_STEPS[shape]), shape
        p50, p99 = (number(v) for v in e2e.split(" / "))
        assert 0 < p50 <= p99, shape
        d50, d99 = (number(v) for v in dispatch.split(" / "))
        assert 0 <= d50 <= d99, shape
        assert number(cpu) > 0, shape
        assert number(rss.split()[0]) > 10, shape  # MiB: a Python process with the engine
    side = table_rows(out, "Side by side")
    assert [r[0] for r in side] == list(SHAPES)
    assert all("steps/s" in r[2] and r[1] == "—" for r in side), "no Celery column was asked for"


SHAPE_STEPS = {"chain-10": 10, "diamond": 5, "fanout-10": 12}


def _close(a: float, b: float) -> bool:
    """steps/s over executions/s is the steps of one execution, up to the tables' rounding."""
    return math.isclose(a, b, rel_tol=0.05)


def test_the_rss_run_samples_every_interval_and_reports_python_heap_growth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m benchmarks.rss``, small: 2,000 steps sampled every 1,000, with
    ``--python-heap`` (structure and positive numbers, not whether RSS is flat)."""
    args = ["--steps", "2000", "--every", "1000", "--in-flight", "4", "--python-heap"]
    assert rss_main(args) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    rows = [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [number(r[0]) for r in rows] == [1000, 2000]
    for row in rows:  # LevelDB may not have compacted yet: its thread's CPU may be 0
        assert len(row) == 10 and all(number(cell) > 0 for cell in row[2:8]), row
        assert number(row[8]) >= 0 and number(row[9]) > 0, row
    assert "KiB per 1,000 steps" in out
    assert "LevelDB at the end:" in out and "Compactions" in out
    assert "Python allocations that grew most" in out


def test_the_rss_run_of_a_cluster_samples_the_worker_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m benchmarks.rss --mode cluster``, small: a worker process on Redis and the
    broker, 600 steps sampled every 300; its RSS and its loop's CPU, no LevelDB."""
    redis_url, kafka = require_redis(), require_kafka().removeprefix("kafka://")
    args = ["--mode", "cluster", "--steps", "600", "--every", "300", "--in-flight", "4"]
    args += ["--retention", "30", "--redis-url", redis_url, "--kafka", kafka]
    assert rss_main(args) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    rows = [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [number(r[0]) for r in rows] == [300, 600]
    for row in rows:  # RSS of a worker process, its loop's CPU; no LevelDB directory
        assert len(row) == 9 and number(row[3]) > 10 and number(row[7]) > 0, row
        assert number(row[6]) == 0, row
    assert "LevelDB at the end:" not in out


def test_the_opcode_count_lists_the_step_s_functions_and_leaves_no_tracer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m benchmarks.opcodes``, small: 200 steps, the 5 costliest functions."""
    assert opcodes_main(["--steps", "200", "--in-flight", "2", "--top", "5"]) == 0
    assert sys.gettrace() is None
    out = capsys.readouterr().out
    per_step = out.split("opcodes per step: ", 1)[1].split(";", 1)[0]
    assert number(per_step) > 1000  # a step runs thousands of bytecodes, no fewer
    rows = [ln.strip("|").split("|") for ln in out.splitlines() if ln.startswith("| ")][2:]
    assert len(rows) == 5 and all(number(ops) > 0 for ops, *_ in rows)
    assert any("distributed/" in function for *_, function in rows), rows


async def test_the_commit_benchmark_measures_each_concurrency_and_leaves_no_keys() -> None:
    """``python -m benchmarks.commit_bench``, small: 20 writes by each of 4 callers."""
    url = require_redis()
    cpu, rate = await measure_commits(url, 20, 4)
    assert cpu > 0 and rate > 0
    client = aioredis.Redis.from_url(url)
    try:
        assert not [key async for key in client.scan_iter(match="flowloom-commit-bench-*")]
    finally:
        await client.aclose()


def test_the_latency_split_prints_the_four_parts_of_an_execution() -> None:
    """``python -m benchmarks.latency``: four positive parts per execution (embedded here),
    then the CPU the process spent per execution."""
    output = asyncio.run(latency_run(["--mode", "embedded", "--count", "3"]))
    parts, cpu = output.split("\n\n")
    rows = [line.split("|")[1:-1] for line in parts.splitlines()[2:]]
    assert [row[0].strip() for row in rows] == list(LATENCY_PARTS)
    for _, p50, most in rows:
        assert 0 <= number(p50) <= number(most), output
    (process, spent), *others = [line.split("|")[1:-1] for line in cpu.splitlines()[2:]]
    assert process.strip() == "this process (workers and client)" and not others, output
    assert number(spent) > 0, output
