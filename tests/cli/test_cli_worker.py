"""``flowloom worker`` lifecycles and ``run`` when waiting stops, with real signals and no
services: ``--processes`` restarts a killed child, a second signal exits at once, ``--check``,
Ctrl-C and ``--timeout`` while a run waits (the id and how to follow or cancel it)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from cli_support import ROOT, base_env, cli, eventually, log_text, spawn
from cli_support import processes as processes  # the fixture

from distributed.cli.exitcodes import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    EXIT_UNAVAILABLE,
)

BLOG = str(ROOT / "examples" / "blog-post" / "blueprints")
MEMORY = ["--store", "memory://", "--broker", "inproc://"]


def _children(log: Path) -> dict[int, int]:
    """Slot -> pid of the latest child the supervisor started (from its log)."""
    started = re.findall(r"worker (\d+) started \(pid (\d+)\)", log_text(log))
    return {int(slot): int(pid) for slot, pid in started}


def test_processes_2_restarts_a_child_killed_with_sigkill(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    log = tmp_path / "supervisor.log"
    supervisor = spawn("worker", "cli_app:engine", "--processes", "2", *MEMORY,
                       env=base_env(), log=log)  # fmt: skip
    processes.append(supervisor)
    eventually(lambda: log_text(log).count("worker started:") == 2, message="two children")
    first = _children(log)
    os.kill(first[0], signal.SIGKILL)
    eventually(lambda: _children(log).get(0, first[0]) != first[0], message="child 0 restarted")
    assert "worker 0 exited with code -9; restarting in 0.5s" in log_text(log)
    eventually(lambda: log_text(log).count("worker started:") == 3, message="restarted child up")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == EXIT_OK
    assert log_text(log).count("phase 4: connections closed") == 2  # both children, gracefully


def test_a_second_signal_exits_at_once_while_a_step_runs(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    data, log, steps = str(tmp_path / "data"), tmp_path / "worker.log", tmp_path / "steps.log"
    inputs = json.dumps({"delay": 60, "log": str(steps)})
    submitted = cli("run", "slow", "--app", "cli_app:engine", "--data", data, "--input", inputs,
                    "--detach", "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert submitted.returncode == EXIT_OK, submitted.stderr
    worker = spawn("worker", "cli_app:engine", "--data", data, "--grace-period", "60",
                   env=base_env(), log=log)  # fmt: skip
    processes.append(worker)
    eventually(lambda: "start first" in log_text(steps), message="the worker took the step")
    worker.send_signal(signal.SIGINT)
    eventually(lambda: "shutdown (signal 2)" in log_text(log), message="graceful stop began")
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=10) == EXIT_INTERRUPTED
    assert "second signal: exiting now" in log_text(log)
    assert "end first" not in log_text(steps)


def test_check_reports_each_service_and_exits_5_when_one_is_down(tmp_path: Path) -> None:
    ok = cli("worker", "cli_app:engine", "--check", *MEMORY, cwd=tmp_path)
    assert ok.returncode == EXIT_OK, ok.stderr
    assert "ok: a worker can start" in ok.stdout and "slow" in ok.stdout
    down = cli("worker", "cli_app:engine", "--check", "--json", "--store", "redis://127.0.0.1:1/0",
               cwd=tmp_path)  # fmt: skip
    assert down.returncode == EXIT_UNAVAILABLE
    report = json.loads(down.stdout)
    assert [c["ok"] for c in report["checks"]] == [False, True]
    assert "unavailable" in report["checks"][0]["error"]


def _run_slow(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path, Path]:
    log, steps = tmp_path / "run.log", tmp_path / "steps.log"
    proc = spawn("run", "slow", "--app", "cli_app:engine", "--data", str(tmp_path / "data"),
                 "--input", json.dumps({"delay": 30, "log": str(steps)}), *extra,
                 env=base_env(), log=log)  # fmt: skip
    return proc, log, steps


def test_ctrl_c_while_a_run_waits_says_how_to_follow_or_cancel_it(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    proc, log, steps = _run_slow(tmp_path)
    processes.append(proc)
    eventually(lambda: "start first" in log_text(steps), message="the step started")
    first_line = log_text(log).splitlines()[0]
    eid = re.fullmatch(r"execution (\w+) · workflow slow", first_line)
    assert eid is not None, first_line  # the id is printed first
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == EXIT_INTERRUPTED
    text = log_text(log)
    assert f"execution {eid[1]} is not finished" in text
    assert f"flowloom status {eid[1]} --follow" in text and f"flowloom cancel {eid[1]}" in text
    assert "Traceback" not in text
    status = cli("status", eid[1], "--data", str(tmp_path / "data"), "--json")
    assert json.loads(status.stdout)["status"] == "running"  # handed back, kept for a worker


def test_a_run_that_outlasts_its_timeout_exits_4_with_its_id(tmp_path: Path) -> None:
    steps = tmp_path / "steps.log"
    done = cli("run", "slow", "--app", "cli_app:engine", "--data", str(tmp_path / "data"),
               "--input", json.dumps({"delay": 30, "log": str(steps)}), "--timeout", "1",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == EXIT_TIMED_OUT
    eid = done.stdout.split()[1]
    assert f"stopped waiting (the --timeout passed): execution {eid}" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_port_serves_prometheus_metrics_while_the_worker_runs(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "worker.log"
    worker = spawn("worker", "cli_app:engine", *MEMORY, "--metrics-port", str(port),
                   env=base_env(), log=log)  # fmt: skip
    processes.append(worker)
    eventually(lambda: "worker started" in log_text(log), message="worker started")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert "workflow_execution_started" in text
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == EXIT_OK
