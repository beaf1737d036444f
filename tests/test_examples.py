"""The Go-style quick start runs as written, embedded and on Redis + the Kafka-protocol broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import require_kafka, require_redis

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart_go_style.py"


def run_quickstart(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(QUICKSTART), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
def test_the_go_style_quickstart_runs_block_for_block(mode: str) -> None:
    args: tuple[str, ...] = ()
    if mode == "cluster":
        args = ("--store", require_redis(), "--broker", f"kafka://{require_kafka()}")
    out = run_quickstart(*args)
    assert "worker pool: 8 workers" in out
    assert "status: failed (3/4 steps)" in out
    assert "root cause: load: ConnectionError: warehouse unavailable" in out
    assert "recovered as generation 2: completed" in out
    assert "summary: '[offline] Strengths:" in out  # the parallel agents' replies reached it
    assert "retry_with_policy: pong after 2 attempts" in out
    assert 'workflow_execution_completed_total{status="completed",workflow="extract"} 1.0' in out


@pytest.mark.parametrize(("decision", "route"), [("approve", "published"), ("reject", "archived")])
def test_the_review_loop_example_revises_waits_and_routes_by_the_decision(
    decision: str, route: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "review_loop.py"), "--decision", decision],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "awaiting ('review',) after 2 revisions" in done.stdout
    assert f"completed: {{'{route}':" in done.stdout
    assert done.stdout.count("Revise this post") >= 4  # two revisions, shown twice
