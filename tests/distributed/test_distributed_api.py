"""The public surface of ``distributed`` is explicit and pinned; the CLI runs as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import distributed
from distributed.cli import _provider

ROOT = Path(__file__).resolve().parents[2]


def test_the_public_names_are_pinned() -> None:
    assert sorted(distributed.__all__) == [
        "DeadLettered",
        "DistributedEngine",
        "DistributedError",
        "DistributedParallelStep",
        "EngineConfig",
        "EventRecorder",
        "ExecutionControl",
        "ExecutionEvent",
        "ExecutionExists",
        "ExecutionFinal",
        "ExecutionFinished",
        "ExecutionNotFound",
        "ExecutionOptions",
        "ExecutionRecord",
        "ExecutionSnapshot",
        "ExecutionSubmitted",
        "FinalStatus",
        "HookSet",
        "Hooks",
        "IllegalTransition",
        "InstrumentedEngine",
        "InvalidSettings",
        "KVPersistence",
        "LeaseExpired",
        "LeaseLost",
        "MQTaskQueue",
        "MQTaskQueueConfig",
        "MetricsHooks",
        "NotRecoverable",
        "PoolConfig",
        "RecoveryConfig",
        "RecoveryManager",
        "RemoteStep",
        "RetryPolicy",
        "RetryScheduled",
        "Runtime",
        "RuntimeContext",
        "StepExecutor",
        "StepFinished",
        "StepOutcome",
        "StepRecord",
        "StepSkipped",
        "StepStarted",
        "SubflowFailed",
        "SweepReport",
        "Task",
        "TaskQueue",
        "TaskResult",
        "UndecodableTask",
        "WaitTimeout",
        "Worker",
        "WorkerConfig",
        "WorkerPool",
        "WorkerStarted",
        "WorkerStopped",
        "WorkflowPersistence",
        "default_engine_config",
        "default_mq_task_queue_config",
        "default_retry_policy",
        "retry_with_policy",
        "retry_with_policy_sync",
    ]
    for name in distributed.__all__:
        assert hasattr(distributed, name)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "distributed", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_runs_a_use_case_on_the_embedded_default_and_says_which_provider() -> None:
    done = run_cli("demo", "job-application")
    assert done.returncode == 0, done.stderr
    assert "LLM provider: offline" in done.stdout
    # extract_skills and analyze_tone start in parallel: the route lists them in commit order
    route = next(line for line in done.stdout.splitlines() if line.startswith("Route: "))
    steps = route.removeprefix("Route: ").split(" -> ")
    assert set(steps[:2]) == {"extract_skills", "analyze_tone"}
    assert steps[2:] == ["check_qualifications", "send_interview_email", "final_output"]
    assert "Dear Ada Lovelace" in done.stdout
    assert "leveldb://" in done.stderr  # the embedded default, no services


def test_the_demo_reports_the_branch_a_scenario_takes() -> None:
    done = run_cli("demo", "job-application", "not-qualified", "--json")
    assert done.returncode == 0, done.stderr
    assert '"send_rejection_email"' in done.stdout
    assert '"status": "completed"' in done.stdout


def test_an_unknown_use_case_is_a_usage_error() -> None:
    done = run_cli("demo", "no-such-case")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_the_provider_is_openai_exactly_when_a_key_is_set_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert _provider("auto").name == "offline"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert _provider("auto").name == "openai"
    assert _provider("offline").name == "offline"
