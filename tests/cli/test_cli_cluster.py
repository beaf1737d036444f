"""``flowloom`` on Redis + the Kafka-protocol broker, as an operator runs it: three worker
processes, client processes for every command (human and ``--json``), and a SIGTERM to a
worker mid-step that loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_support import (
    ROOT,
    TANSU_QUERY,
    base_env,
    cli,
    cli_json,
    delete_redis_prefix,
    eventually,
    log_text,
    new_tag,
    spawn,
)
from support import require_kafka, require_redis

from distributed.cli.exitcodes import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE

EXAMPLES = ROOT / "examples"
MAIN = {"blog-post": "100", "job-application": "200", "customer-review": "300",
        "content-moderation": "400"}  # fmt: skip
WORKERS = 3


@dataclass
class Cluster:
    """Three ``flowloom worker cli_app:engine`` processes in their own namespace."""

    env: dict[str, str]
    tmp: Path
    tag: str
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start_worker(self) -> None:
        log = self.tmp / f"worker-{len(self.logs)}.log"
        self.workers.append(spawn("worker", env=self.env, log=log))
        self.logs.append(log)

    def worker_logs(self) -> str:
        return "".join(log_text(log) for log in self.logs)

    def status(self, eid: str) -> dict[str, object]:
        snapshot: dict[str, object] = cli_json("status", eid, env=self.env)
        return snapshot


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis, kafka = require_redis(), require_kafka()
    tag = new_tag()
    env = base_env(
        FLOWLOOM_STORE_URL=f"{redis.split('?')[0]}?prefix={tag}:",
        FLOWLOOM_BROKER_URL=f"kafka://{kafka}?{TANSU_QUERY}",
        FLOWLOOM_NAMESPACE=tag,
        FLOWLOOM_APP="cli_app:engine",
        FLOWLOOM_LEASE_TTL="2",
        FLOWLOOM_SWEEP_INTERVAL="0.2",
    )
    running = Cluster(env, tmp_path_factory.mktemp("cluster"), tag)
    for _ in range(WORKERS):
        running.start_worker()
    eventually(lambda: running.worker_logs().count("worker started") == WORKERS, timeout=60,
               message="three workers started")  # fmt: skip
    yield running
    for proc in running.workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in running.workers:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    delete_redis_prefix(f"{tag}:")


def _submit(cluster: Cluster, workflow: str, inputs: dict[str, object]) -> str:
    done = cli("run", workflow, "--input", json.dumps(inputs), "--detach", env=cluster.env)
    assert done.returncode == EXIT_OK, done.stderr
    return done.stdout.strip()


def test_three_workers_and_a_client_run_the_four_use_cases(cluster: Cluster) -> None:
    clients = {
        case: subprocess.Popen(
            [
                *_python(),
                "run",
                workflow,
                "--input",
                f"@{EXAMPLES / case / 'inputs.json'}",
                "--json",
                "--timeout",
                "90",
            ],
            cwd=ROOT,
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case, workflow in MAIN.items()
    }
    for case, proc in clients.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_OK, (case, err)
        snapshot = json.loads(out)
        assert snapshot["status"] == "completed", (case, snapshot)
        assert f"execution {snapshot['execution_id']} submitted" in err  # the id came first
    assert cluster.worker_logs().count("started (attempt 1") >= 4


def _python() -> list[str]:
    import sys

    return [sys.executable, "-m", "distributed"]


def test_status_and_list_in_text_and_json(cluster: Cluster, tmp_path: Path) -> None:
    inputs = json.loads((EXAMPLES / "blog-post" / "inputs.json").read_text())
    eid = _submit(cluster, "100", inputs)
    done = cli("status", eid, "--follow", "--timeout", "60", env=cluster.env)
    assert done.returncode == EXIT_OK, done.stderr
    assert f"execution  {eid}" in done.stdout and "status     completed" in done.stdout
    order = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("  completed")]
    assert order == ["generate_outline", "draft_post", "suggest_titles", "final_output"]
    snapshot = cluster.status(eid)
    assert snapshot["status"] == "completed" and snapshot["workflow_id"] == "100"
    listed = cli_json("list", "--workflow", "100", "--status", "completed", env=cluster.env)
    assert eid in [item["execution_id"] for item in listed]
    assert all(item["workflow_id"] == "100" for item in listed)
    text = cli("list", "--limit", "50", env=cluster.env)
    assert text.returncode == EXIT_OK and eid in text.stdout


def test_cancel_pause_and_resume_in_text_and_json(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    eid = _submit(cluster, "slow", {"delay": 30, "log": str(log)})
    eventually(lambda: "start first" in log_text(log), message="the slow step started")
    assert cli_json("pause", eid, env=cluster.env) == {
        "execution_id": eid, "action": "pause", "done": True, "status": "paused"}  # fmt: skip
    assert cluster.status(eid)["status"] == "paused"
    resumed = cli("resume", eid, env=cluster.env)
    assert (resumed.returncode, resumed.stdout.strip()) == (EXIT_OK, f"resumed {eid}")
    cancelled = cli_json("cancel", eid, env=cluster.env)
    assert cancelled == {"execution_id": eid, "cancelled": True, "status": "cancelled"}
    again = cli("cancel", eid, env=cluster.env)
    assert again.returncode == EXIT_FAILED
    expected = f"flowloom: execution '{eid}' is already cancelled; nothing to cancel"
    assert again.stderr.strip() == expected
    refused = cli("pause", eid, env=cluster.env)
    assert refused.returncode == EXIT_FAILED and "already cancelled" in refused.stderr
    follow = cli("status", eid, "--follow", env=cluster.env)
    assert follow.returncode == EXIT_CANCELLED


def test_recover_reruns_a_failed_execution_from_its_checkpoint(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, flag = tmp_path / "steps.log", tmp_path / "warehouse-up"
    inputs = {"log": str(log), "flag": str(flag)}
    done = cli("run", "flaky", "--input", json.dumps(inputs), "--json", env=cluster.env)
    assert done.returncode == EXIT_FAILED
    failed = json.loads(done.stdout)
    assert failed["status"] == "failed" and "warehouse is down" in failed["error"]
    eid = failed["execution_id"]
    refused = cli("recover", "nope", env=cluster.env)
    assert refused.returncode == EXIT_USAGE
    flag.touch()
    assert cli_json("recover", eid, env=cluster.env) == {"execution_id": eid, "generation": 2}
    done = cli("status", eid, "--follow", "--timeout", "60", env=cluster.env)
    assert done.returncode == EXIT_OK, done.stderr
    assert "generation 2" in done.stdout and "history    generation 1: failed" in done.stdout
    assert log_text(log).count("start fetch") == 1  # kept from generation 1, not re-run
    again = cli("recover", eid, env=cluster.env)
    assert again.returncode == EXIT_FAILED and "nothing to recover" in again.stderr


def test_signal_completes_a_wait_and_a_second_signal_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    eid = _submit(cluster, "approval", {"log": str(log)})
    eventually(lambda: cluster.status(eid)["status"] == "awaiting", message="awaiting review")
    listed = cli_json("list", "--status", "awaiting", env=cluster.env)
    assert eid in {row["execution_id"] for row in listed}
    sent = cli("signal", eid, "review", "--action", "approve", "--payload", '{"by": "ada"}',
               env=cluster.env)  # fmt: skip
    assert (sent.returncode, sent.stdout.strip()) == (
        EXIT_OK,
        f"signalled review (approve) to {eid}",
    )
    again = cli("signal", eid, "review", env=cluster.env)
    assert again.returncode == EXIT_FAILED and "already" in again.stderr
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    done = cli("status", eid, "--follow", "--timeout", "60", env=cluster.env)
    assert done.returncode == EXIT_OK, done.stderr
    assert log_text(log).count("start publish") == 1
    unknown = cli("signal", eid, "lunch", env=cluster.env)
    assert unknown.returncode == EXIT_FAILED


def test_dead_letters_are_listed_shown_replayed_and_purged(cluster: Cluster) -> None:
    import asyncio

    from distributed import Task
    from mq import open_broker

    async def publish() -> None:
        broker = open_broker(cluster.env["FLOWLOOM_BROKER_URL"])
        try:
            await broker.publish(f"{cluster.tag}.tasks", b"\x80 not json")
            task = Task(execution_id="no-such-execution", node_id="a")
            await broker.publish(f"{cluster.tag}.tasks", task.to_bytes(), key="x")
        finally:
            await broker.close()

    asyncio.run(publish())

    seen: list[object] = []

    def two_letters() -> list[dict[str, object]] | None:
        found = cli_json("dlq", "list", env=cluster.env)
        seen.append(found)
        return found if len(found) == 2 else None

    try:
        letters = eventually(two_letters, message="two dead letters")
    except AssertionError as missing:
        raise AssertionError(f"{missing}; the last listing: {seen[-1:]}") from None
    reasons = sorted(str(letter["reason"]) for letter in letters)
    assert reasons[0].startswith("not a task") and "unknown execution" in reasons[1]
    text = cli("dlq", "list", env=cluster.env)
    assert text.returncode == EXIT_OK and "no-such-execution/a" in text.stdout
    undecodable = next(x for x in letters if x["task"] is None)
    shown = cli("dlq", "show", str(undecodable["id"]), env=cluster.env)
    assert shown.returncode == EXIT_OK and "(not a task)" in shown.stdout
    refused = cli("dlq", "replay", str(undecodable["id"]), env=cluster.env)
    assert refused.returncode == EXIT_USAGE and "cannot be replayed" in refused.stderr
    purged = cli_json("dlq", "purge", env=cluster.env)
    assert sorted(purged["purged"]) == sorted(str(x["id"]) for x in letters)
    assert cli_json("dlq", "list", env=cluster.env) == []
    task_letter = next(x for x in letters if x["task"] is not None)
    replayed = cli_json("dlq", "replay", str(task_letter["id"]), env=cluster.env)
    assert replayed["replayed"][0]["execution_id"] == "no-such-execution"
    # the replayed task dead-letters again (its execution does not exist): a new letter
    again = eventually(lambda: cli_json("dlq", "list", env=cluster.env), message="a new letter")
    assert [x["task"]["execution_id"] for x in again] == ["no-such-execution"]
    assert len(cli_json("dlq", "list", "--all", env=cluster.env)) == 3


def test_sigterm_mid_step_lets_the_step_finish_and_the_execution_completes(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    eid = _submit(cluster, "slow", {"delay": 1.5, "log": str(log)})
    started = eventually(lambda: [ln for ln in log_text(log).splitlines() if "start first" in ln])
    pid = int(started[0].split()[-1])
    worker = next(proc for proc in cluster.workers if proc.pid == pid)
    begun = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == EXIT_OK
    assert f"end first {pid}" in log_text(log)  # the running step finished in the grace period
    assert time.monotonic() - begun < 15
    own_log = log_text(cluster.logs[cluster.workers.index(worker)])
    for phase in ("phase 1: stopped fetching", "phase 3:", "phase 4: connections closed"):
        assert phase in own_log
    done = cli("status", eid, "--follow", "--timeout", "60", env=cluster.env)
    assert done.returncode == EXIT_OK, done.stderr
    assert log_text(log).count("start first") == 1
