"""``python -m benchmarks --quick`` runs and prints sane tables (structure and positive numbers,
never speed: timings belong to the benchmark, not to the suite). About 10 s: one embedded round
of the three shapes, in a subprocess, as a user runs it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("chain-10", "diamond", "fanout-50")


def run_quick() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--modes", "embedded", "--no-celery"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the markdown table under ``## heading``, as lists of cells."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.strip().splitlines() if ln.startswith("|")]
    rows = [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines]
    assert set(rows[1][0]) <= {"-", ":"}, "the second line separates the header"
    return rows[2:]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_quick_embedded_run_prints_one_measured_row_per_shape() -> None:
    out = run_quick()
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


SHAPE_STEPS = {"chain-10": 10, "diamond": 5, "fanout-50": 52}


def _close(a: float, b: float) -> bool:
    """steps/s over executions/s is the steps of one execution, up to the tables' rounding."""
    return math.isclose(a, b, rel_tol=0.05)
