"""Crash-proof by test: real worker processes are killed with SIGKILL in the middle of steps.

After the kill, survivors must finish every execution with exactly one final status, fire each
join exactly once, lose no step result, and never re-run a step whose result was committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_app import WORKFLOW, build_engine, cluster_runtime, pool_config
from scenario_support import delete_prefix
from support import REDIS_URL, assert_eventually, require_kafka, require_redis

from distributed import Runtime

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STEPS = ("fan", "s1", "s2", "s3", "join")


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), str(ROOT / "tests")])}
    return subprocess.Popen(
        [sys.executable, str(HERE / "crash_app.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def victims() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def log_lines(path: Path) -> Counter[tuple[str, str, str]]:
    """(start|end, execution, step) -> how many times it was logged."""
    if not path.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in path.read_text().splitlines() if line)  # type: ignore[misc]


def started_slow_steps(path: Path, execution_ids: list[str]) -> bool:
    """Every execution has started a slow step, so its ``fan`` is committed (slow steps start
    only after it): a kill now interrupts slow steps, never a fan between its end and commit."""
    started = {eid for kind, eid, step in log_lines(path) if kind == "start" and step[0] == "s"}
    return started >= set(execution_ids)


def assert_exactly_once_outcome(path: Path, execution_ids: list[str]) -> None:
    """Every step ended once, the join fired once, and no step started again after it had
    ended (one the kill interrupted mid-run may start again: it never ended)."""
    lines = [tuple(line.split()) for line in path.read_text().splitlines() if line]
    runs = Counter(lines)
    for eid in execution_ids:
        for step in STEPS:
            assert runs[("end", eid, step)] == 1, (
                f"{eid}/{step} committed {runs[('end', eid, step)]} times"
            )
            ended = lines.index(("end", eid, step))
            assert ("start", eid, step) not in lines[ended:], (
                f"{eid}/{step} re-ran after its result was committed"
            )
        assert runs[("start", eid, "join")] == 1, f"join of {eid} fired more than once"


async def test_killing_a_cluster_worker_mid_step_loses_nothing_and_joins_fire_once(
    tmp_path: Path, victims: list[subprocess.Popen[str]]
) -> None:
    require_redis()
    broker_url = f"kafka://{require_kafka()}"
    tag = f"flowloom-crash-{uuid.uuid4().hex[:8]}"
    prefix, run_log = f"{tag}:", tmp_path / "runs.log"
    victim = spawn("cluster", REDIS_URL, prefix, broker_url, tag)
    victims.append(victim)
    assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"

    try:
        client = cluster_runtime(build_engine(), REDIS_URL, prefix, broker_url, tag, workers=False)
        async with client:
            ids = [
                await client.engine.execute_async(WORKFLOW, {"run_log": str(run_log)})
                for _ in range(3)
            ]
            await assert_eventually(
                lambda: started_slow_steps(run_log, ids), timeout=60, message="victim busy"
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)

            survivor = cluster_runtime(
                build_engine(), REDIS_URL, prefix, broker_url, tag, pool=pool_config(tag, 2)
            )
            async with survivor:
                snapshots = [await survivor.engine.wait(eid, timeout=90) for eid in ids]

        assert [s.status for s in snapshots] == ["completed"] * 3
        assert_exactly_once_outcome(run_log, ids)
    finally:
        await delete_prefix(prefix)


async def test_killing_the_embedded_process_mid_step_resumes_on_restart(
    tmp_path: Path, victims: list[subprocess.Popen[str]]
) -> None:
    data_dir, run_log = tmp_path / "data", tmp_path / "runs.log"
    victim = spawn("embedded", str(data_dir), str(run_log), "3")
    victims.append(victim)
    assert victim.stdout is not None
    ids = [victim.stdout.readline().strip() for _ in range(3)]
    busy = lambda: started_slow_steps(run_log, ids)  # noqa: E731
    await assert_eventually(busy, timeout=60, message="victim busy")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_with = log_lines(run_log)

    async with Runtime.embedded(
        build_engine(), str(data_dir), pool=pool_config(worker_count=2)
    ) as rt:
        snapshots = [await rt.engine.wait(eid, timeout=60) for eid in ids]

    assert [s.status for s in snapshots] == ["completed"] * 3
    runs = log_lines(run_log)
    assert_exactly_once_outcome(run_log, ids)
    assert any(
        runs[k] > killed_with[k] for k in runs if k[0] == "start" and k[2].startswith("s")
    ), "some step interrupted by the kill ran again after the restart"
