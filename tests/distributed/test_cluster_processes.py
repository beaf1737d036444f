"""The execution core across real processes: crashes at failpoints, the sweeper's leader lease,
and lifecycle hooks in two worker processes (``cluster_app.py`` runs the other processes).

- A process that dies right after a commit (or right after scheduling the successors) leaves
  nothing for anyone to do by hand: a survivor finishes every execution, the committed step never
  runs again, each join fires once, each execution completes once. Cluster and embedded.
- A worker killed right after it stored a final status (``after-final``) has told it: a
  client's ``wait`` hears the notice that went with the write.
- Of two pools, exactly one sweeps at a time; SIGKILL it and the other takes over once the
  leader lease expires.
- Hooks in two worker processes see each step start and finish once, and each execution's final
  status once, across the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_app import (
    BRANCHES,
    STEPS,
    SWEEP_RECOVERY,
    WORKFLOW,
    build_engine,
    cluster_runtime,
    pool_config,
)
from scenario_support import delete_prefix, hearing_finals
from support import REDIS_URL, assert_eventually, assert_never, require_kafka, require_redis

from distributed import EngineConfig, ExecutionFinished, ExecutionSnapshot, Hooks, Runtime
from store import open_store

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXECUTIONS = 4  # per crash test
WAIT = 60  # seconds: generous bounds for things that take a second or a few
TAKEOVER_MARGIN = 1.0  # seconds on top of leader_ttl + interval: process scheduling on a busy CI
RENEWAL_TO_LOG = 0.5  # seconds a busy sweeper may take from renewing its lease to logging a sweep

RunLog = Counter[tuple[str, str, str]]  # (start|end, execution, step) -> times logged


# -- processes ------------------------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test spawns; killed (if still alive) and reaped when the test ends."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def spawn(
    procs: list[subprocess.Popen[str]], *args: str, failpoint: str | None = None
) -> subprocess.Popen[str]:
    """Start ``cluster_app.py`` with ``args``; ``failpoint`` arms FLOWLOOM_FAILPOINT in it."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWLOOM_FAILPOINT"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), str(ROOT / "tests")])
    if failpoint is not None:
        env["FLOWLOOM_FAILPOINT"] = failpoint
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "cluster_app.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


async def ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
    assert line.strip() == "ready", f"process {proc.pid} did not start (exit {proc.poll()})"


async def exit_code(proc: subprocess.Popen[str], timeout: float = WAIT) -> int:
    await assert_eventually(
        lambda: proc.poll() is not None, timeout=timeout, message=f"process {proc.pid} exits"
    )
    return proc.returncode


@dataclass
class Cluster:
    """One test's share of Redis (prefix) and the broker (namespace, topic, group: ``tag``)."""

    tag: str
    prefix: str
    broker_url: str

    def worker_args(self, *options: str) -> list[str]:
        return ["worker", REDIS_URL, self.prefix, self.broker_url, self.tag, *options]

    def runtime(self, **kw: Any) -> Runtime:
        return cluster_runtime(
            build_engine(), REDIS_URL, self.prefix, self.broker_url, self.tag, **kw
        )


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    require_redis()
    broker_url = f"kafka://{require_kafka()}"
    tag = f"flowloom-procs-{uuid.uuid4().hex[:8]}"
    yield Cluster(tag=tag, prefix=f"{tag}:", broker_url=broker_url)
    await delete_prefix(f"{tag}:")


# -- what the processes left behind ---------------------------------------------------------


def run_log(path: Path) -> RunLog:
    if not path.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in path.read_text().splitlines() if line)  # type: ignore[misc]


class FinalRecorder(Hooks):
    """Records, in this process, every final status it wins."""

    def __init__(self) -> None:
        self.finals: list[ExecutionFinished] = []

    def execution_final(self, event: ExecutionFinished) -> None:
        self.finals.append(event)


@dataclass
class AtKill:
    """The store and the run log as the victim left them."""

    runs: RunLog
    committed: set[tuple[str, str]]  # (execution, step) completed in the store
    agenda: dict[str, set[str]]  # execution -> steps still on its agenda
    recorded: dict[str, set[str]]  # execution -> steps with a record in the store


async def submit(runtime: Runtime, count: int, log: Path) -> list[str]:
    return [
        await runtime.engine.execute_async(WORKFLOW, {"run_log": str(log)}) for _ in range(count)
    ]


async def at_kill(runtime: Runtime, ids: list[str], log: Path) -> AtKill:
    committed: set[tuple[str, str]] = set()
    agenda: dict[str, set[str]] = {}
    recorded: dict[str, set[str]] = {}
    for eid in ids:
        snapshot = await runtime.engine.get_execution_status(eid)
        committed |= {(eid, n) for n, s in snapshot.steps.items() if s.status == "completed"}
        agenda[eid] = {entry.node_id async for entry in runtime.engine.persistence.agenda(eid)}
        recorded[eid] = set(snapshot.steps)
    return AtKill(run_log(log), committed, agenda, recorded)


def assert_killed_at(point: str, killed: AtKill) -> None:
    """The victim died where the failpoint says. after-commit: only the fan was committed; its
    branches (which only the fan decides) were put on the agenda by the commit itself, at
    least the first with a first attempt leased to the victim's slot, the others to its free
    slots or left to be enqueued by the fan's advance (``dispatch.HandOn``; an embedded restart
    has handed them back already); the fan is still on the agenda unless every branch was
    leased (then its commit retired it); and no branch started. after-schedule: a step's
    advance scheduled its successors: every branch is on the agenda or done. owing-unschedule:
    a step's advance was done and its removal from the agenda owed (it rides on a later
    write): the step is still on the agenda, for the sweep to finish again."""
    assert killed.committed, f"no step was committed before the {point} kill"
    fans = {eid for eid, step in killed.committed if step == "fan"}
    assert fans, killed
    if point == "after-commit":
        assert {step for _, step in killed.committed} == {"fan"}, killed.committed
        for eid in fans:
            leased = killed.recorded[eid] & set(BRANCHES)
            assert leased, f"{eid}: no branch was leased in the fan's commit"
            fan = set() if leased == set(BRANCHES) else {"fan"}
            assert killed.agenda[eid] == {*fan, *BRANCHES}, killed.agenda
        assert not [k for k in killed.runs if k[0] == "start" and k[2] in BRANCHES]
    elif point == "after-schedule":
        done = {(eid, step) for eid, step in killed.committed}
        for eid in fans:
            waiting = {b for b in BRANCHES if (eid, b) not in done}
            assert killed.agenda[eid] >= waiting, killed.agenda
    else:  # a committed step died owing its removal: it is still on the agenda
        assert any(step in killed.agenda[eid] for eid, step in killed.committed), killed.agenda


def assert_finished_once(
    ids: list[str], snapshots: list[ExecutionSnapshot], finals: list[ExecutionFinished]
) -> None:
    assert [s.status for s in snapshots] == ["completed"] * len(ids)
    assert sorted(f.execution_id for f in finals) == sorted(ids), "one final status each"
    assert {f.status for f in finals} == {"completed"}


def assert_nothing_committed_reran(killed: AtKill, runs: RunLog, ids: list[str]) -> None:
    for eid, step in killed.committed:
        start = ("start", eid, step)
        assert runs[start] == killed.runs[start] == 1, f"{eid}/{step} ran again after its commit"
    for eid in ids:
        assert runs[("start", eid, "join")] == runs[("end", eid, "join")] == 1, f"join of {eid}"
        assert all(runs[("end", eid, step)] >= 1 for step in STEPS), f"{eid}: {runs}"


# -- 1. a crash right after a commit ------------------------------------------------------------


@pytest.mark.parametrize("point", ["after-commit", "after-schedule", "owing-unschedule"])
async def test_a_cluster_worker_killed_at_a_failpoint_leaves_nothing_to_do_by_hand(
    point: str, cluster: Cluster, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    victim = spawn(processes, *cluster.worker_args(), failpoint=point)
    await ready(victim)
    async with cluster.runtime(workers=False) as client:
        ids = await submit(client, EXECUTIONS, log)
        assert await exit_code(victim) == 137, f"the victim did not die at {point}"
        killed = await at_kill(client, ids, log)
    assert_killed_at(point, killed)

    recorder = FinalRecorder()
    survivor = cluster.runtime(pool=pool_config(cluster.tag, worker_count=2), hooks=recorder)
    async with survivor:
        snapshots = [await survivor.engine.wait(eid, timeout=WAIT) for eid in ids]

    assert_finished_once(ids, snapshots, recorder.finals)
    assert_nothing_committed_reran(killed, run_log(log), ids)


@pytest.mark.parametrize("point", ["after-commit", "after-schedule", "owing-unschedule"])
async def test_an_embedded_process_killed_at_a_failpoint_finishes_on_restart(
    point: str, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "runs.log"

    async with embedded_client(data_dir) as submitter:
        ids = await submit(submitter, EXECUTIONS, log)
    victim = spawn(processes, "embedded", str(data_dir), failpoint=point)
    assert await exit_code(victim) == 137, f"the victim did not die at {point}"
    async with embedded_client(data_dir) as reader:
        killed = await at_kill(reader, ids, log)
    assert_killed_at(point, killed)

    assert_finished_once(ids, *await restart_embedded(data_dir, ids))
    assert_nothing_committed_reran(killed, run_log(log), ids)


async def test_a_process_killed_before_running_the_start_steps_it_leased_loses_nothing(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """A process with workers leases the start steps of the executions it submits to its own
    slots in the writes that record them (``Scheduler.start``); killed right after (the
    after-lease failpoint, before a step runs), it leaves them leased to its dead workers,
    and the restarted runtime reclaims them and finishes every execution, each step once."""
    data_dir, log = tmp_path / "data", tmp_path / "runs.log"
    args = ("embedded", str(data_dir), "--submit", str(EXECUTIONS), "--run-log", str(log))
    victim = spawn(processes, *args, failpoint="after-lease")
    assert await exit_code(victim) == 137, "the victim did not die after a lease"
    async with embedded_client(data_dir) as reader:
        persistence = reader.engine.persistence
        ids = sorted([eid async for eid in persistence.all_executions()])
        starts = [await persistence.step(eid, "fan") for eid in ids]
    assert ids, "the victim recorded no execution"
    # leased in the write that recorded it (the reader's runtime may have reclaimed it since)
    assert all(s is not None and s.record.attempts == 1 for s in starts), starts
    assert run_log(log) == Counter(), "a step ran before the kill"

    assert_finished_once(ids, *await restart_embedded(data_dir, ids))
    runs = run_log(log)
    assert {runs[("start", eid, step)] for eid in ids for step in STEPS} == {1}, runs


def embedded_client(data_dir: Path) -> Runtime:
    """A runtime without workers on the embedded store in ``data_dir``."""
    return Runtime.from_urls(
        build_engine(), store_url=f"leveldb://{data_dir}", broker_url="inproc://", workers=False
    )


async def restart_embedded(
    data_dir: Path, ids: list[str]
) -> tuple[list[ExecutionSnapshot], list[ExecutionFinished]]:
    """Restart an embedded runtime on ``data_dir`` and wait for ``ids``: their snapshots, and
    the final statuses it won."""
    recorder = FinalRecorder()
    restarted = Runtime.embedded(
        build_engine(), str(data_dir), pool=pool_config(worker_count=2), hooks=recorder
    )
    async with restarted:
        snapshots = [await restarted.engine.wait(eid, timeout=WAIT) for eid in ids]
    return snapshots, recorder.finals


async def test_a_final_status_stored_by_a_worker_killed_right_after_is_still_told(
    cluster: Cluster, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """The notice of a final status goes with the write that stores it: a client whose
    ``wait`` polls every 30 s returns long before that, although the only worker dies right
    after storing the status, before it tells any hook."""
    async with cluster.runtime(workers=False) as client:
        client.engine.config = EngineConfig(poll_interval=30.0, max_poll_interval=30.0)
        (eid,) = await submit(client, 1, tmp_path / "runs.log")
        waiter = asyncio.ensure_future(client.engine.wait(eid, timeout=25))
        persistence, finals = client.engine.persistence, client.engine.context.finals
        await assert_eventually(lambda: hearing_finals(persistence, finals), timeout=WAIT)
        begun = time.monotonic()
        victim = spawn(processes, *cluster.worker_args(), failpoint="after-final")
        snapshot = await waiter  # else wait's last read, at its 25 s deadline, finds it
        waited = time.monotonic() - begun
        assert await exit_code(victim) == 137, "the victim did not die after the final status"
    assert snapshot.status == "completed"
    assert waited < 15, f"wait returned {waited:.1f} s after the worker started: not told"


# -- 2. one sweeper at a time ---------------------------------------------------------------


def sweeps(path: Path) -> list[tuple[int, float]]:
    """(pid, time.time()) of every sweep logged so far, in order."""
    if not path.exists():
        return []
    return [
        (int(pid), float(at))
        for pid, at in (line.split() for line in path.read_text().splitlines() if line)
    ]


async def leader_lease(cluster: Cluster) -> str:
    store = open_store(REDIS_URL, prefix=cluster.prefix)
    try:
        value = await store.get(f"{cluster.tag}/leader/recovery")
    finally:
        await store.close()
    return "" if value is None else value.decode()


async def test_of_two_pools_exactly_one_sweeps_and_the_other_takes_over_when_it_is_killed(
    cluster: Cluster, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "sweeps.log"
    args = cluster.worker_args("--sweeper", "--sweep-log", str(log))
    pools = [spawn(processes, *args) for _ in range(2)]
    for pool in pools:
        await ready(pool)
    ttl, interval = SWEEP_RECOVERY.leader_ttl, SWEEP_RECOVERY.interval

    first = await assert_eventually(lambda: sweeps(log), timeout=WAIT, message="a pool sweeps")
    leader = next(p for p in pools if p.pid == first[0][0])
    follower = next(p for p in pools if p is not leader)
    window = 1.5
    await assert_never(
        lambda: {pid for pid, _ in sweeps(log)} != {leader.pid},
        during=window,
        message="the other pool swept while the leader was alive",
    )
    assert len(sweeps(log)) >= window / interval / 3, "the leader stopped sweeping"
    assert f"-{leader.pid}-" in await leader_lease(cluster)

    killed_at = time.time()
    leader.send_signal(signal.SIGKILL)
    assert await exit_code(leader) == -signal.SIGKILL
    taken = await assert_eventually(
        lambda: [at for pid, at in sweeps(log) if pid == follower.pid],
        timeout=WAIT,
        message="the surviving pool sweeps",
    )
    last_of_leader = max(at for pid, at in sweeps(log) if pid == leader.pid)
    takeover, gap = taken[0] - killed_at, taken[0] - last_of_leader
    bound = ttl + interval + TAKEOVER_MARGIN
    report = (
        f"take-over {takeover:.3f}s after the SIGKILL (bound {bound:.1f}s = leader_ttl {ttl} + "
        f"interval {interval} + margin {TAKEOVER_MARGIN}); {gap:.3f}s after the leader's "
        f"last sweep"
    )
    print(report)
    assert taken[0] > killed_at, f"the follower swept while the leader was alive; {report}"
    assert takeover <= bound, report
    # The follower waited for the lease to expire: the leader renewed it for leader_ttl seconds
    # just before its last sweep (less RENEWAL_TO_LOG: the delay from renewal to the log line).
    assert gap >= ttl - RENEWAL_TO_LOG, report
    assert f"-{follower.pid}-" in await leader_lease(cluster)


# -- 3. hooks across two worker processes ---------------------------------------------------


def hook_events(*paths: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in paths
        if path.exists()
        for line in path.read_text().splitlines()
        if line
    ]


def ran_steps(path: Path) -> bool:
    return any(e["event"] == "step_started" for e in hook_events(path))


async def test_hooks_in_two_worker_processes_see_each_step_and_each_final_status_once(
    cluster: Cluster, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    logs = [tmp_path / "hooks-a.jsonl", tmp_path / "hooks-b.jsonl"]
    workers = [spawn(processes, *cluster.worker_args("--hooks-log", str(p))) for p in logs]
    for worker in workers:
        await ready(worker)

    # Submit in rounds until both processes ran steps (the second one's group join may land
    # after the first round) and at least 20 executions ran.
    client_hooks = FinalRecorder()
    ids: list[str] = []
    deadline = time.monotonic() + WAIT
    async with cluster.runtime(workers=False, hooks=client_hooks) as client:
        while len(ids) < 20 or not all(ran_steps(p) for p in logs):
            assert time.monotonic() < deadline, f"one process ran nothing in {len(ids)} runs"
            batch = [await client.engine.execute_async(WORKFLOW, {}) for _ in range(10)]
            snapshots = [await client.engine.wait(eid, timeout=WAIT) for eid in batch]
            assert [s.status for s in snapshots] == ["completed"] * len(batch)
            ids += batch
    for worker in workers:
        worker.send_signal(signal.SIGTERM)  # a graceful stop: every hook line is written
    assert [await exit_code(w) for w in workers] == [0, 0]

    events = hook_events(*logs)
    by_name = Counter(e["event"] for e in events)
    assert set(by_name) == {"step_started", "step_finished", "execution_final"}, by_name
    started = Counter(
        (e["execution_id"], e["step_id"]) for e in events if e["event"] == "step_started"
    )
    finished = [e for e in events if e["event"] == "step_finished"]
    finals = [e for e in events if e["event"] == "execution_final"]
    expected = {(eid, step) for eid in ids for step in STEPS}
    assert set(started) == expected and set(started.values()) == {1}, "one start per step"
    assert Counter((e["execution_id"], e["step_id"]) for e in finished) == Counter(expected)
    assert {(e["outcome"], e["attempt"]) for e in finished} == {("completed", 1)}
    assert sorted(e["execution_id"] for e in finals) == sorted(ids), "one final status each"
    assert {e["status"] for e in finals} == {"completed"}
    assert client_hooks.finals == [], "the client wrote no final status"
    # Told once, by the worker process that won it: the join's, or one whose advance (of a
    # branch, or of a queued copy of the join's task) found everything done first.
    assert {e["pid"] for e in finals} <= {w.pid for w in workers}
    work = Counter(e["pid"] for e in events if e["event"] == "step_started")
    assert set(work) == {w.pid for w in workers}, f"steps per process: {dict(work)}"
    print(f"{len(ids)} executions; steps per process: {dict(work)}")
