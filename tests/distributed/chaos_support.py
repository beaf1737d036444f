"""The chaos driver shared by ``test_chaos.py`` and ``benchmarks/chaos.py``.

``run_chaos`` starts ``flowloom worker chaos_app:engine`` processes on the cluster backend (one
namespace: its own key prefix, topic and consumer group), submits a mix of the four
``chaos_app`` shapes, SIGKILLs a random worker every ``kill_every`` seconds (and starts a
replacement at once), optionally restarts a private Redis and pauses a private broker on the
way, waits for every execution to end, and measures what happened (``ChaosReport``).
``run_recovery`` does single kills one at a time and times each recovery.

What is measured, and from where:

- final statuses: the store (each execution's snapshot);
- lost: an execution that is not ``completed``, or a step not in the status its shape requires
  (completed on the path taken, skipped off it), or a completed step without its output;
- one final status: the status is first-writer-wins in the store; the event log must not hold
  two ``execution.final`` events for one execution (it may hold none: a process killed right
  after winning the final status loses the events it had not appended yet);
- double joins: runs of a join step beyond the first that no kill explains (a run of a killed
  process that logged no end is explained by the kill);
- re-runs after commit: runs that started after the step's result was committed (the step
  record's ``finished_at``);
- duplicates per 1,000 steps: step runs beyond one per step, per 1,000 steps that ran;
- recovery: for each step in flight in a process when it was SIGKILLed (a ``start`` in the run
  log without an ``end``), the time from the kill to that step's next start in another process.

Nothing here imports pytest.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_app import JOINS, SHAPES, build_engine, expected_steps
from fault_support import PrivateRedis, PrivateTansu

from benchmarks.flowloom_run import delete_keys
from distributed import ExecutionSnapshot, Runtime
from distributed.settings import Settings

__all__ = [
    "ChaosConfig",
    "ChaosReport",
    "RunLine",
    "WorkerFleet",
    "analyse",
    "read_run_log",
    "run_chaos",
    "run_recovery",
]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FLOWLOOM = [sys.executable, "-m", "distributed"]  # what the ``flowloom`` script runs
READY_TIMEOUT = 60.0


# -- the run log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunLine:
    kind: str  # start | end
    execution_id: str
    step: str
    attempt: int
    pid: int
    at: float  # time.time()


def read_run_log(path: Path) -> list[RunLine]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        parts = raw.split()
        if len(parts) == 6:
            kind, eid, step, attempt, pid, at = parts
            lines.append(RunLine(kind, eid, step, int(attempt), int(pid), float(at)))
    return lines


# -- worker processes -------------------------------------------------------------------------


@dataclass
class WorkerFleet:
    """``flowloom worker`` processes of one namespace; each logs to its own file."""

    store_url: str
    broker_url: str
    namespace: str
    folder: Path
    extra_args: tuple[str, ...] = ()
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[tuple[int, float]] = field(default_factory=list)  # (pid, time.time())

    def spawn(self, **environment: str) -> subprocess.Popen[bytes]:
        """Start one worker; ``environment`` adds variables (``FLOWLOOM_FAILPOINT=...``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
        env.update(environment)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
        log_path = self.folder / f"worker-{len(self.procs)}.log"
        command = [*FLOWLOOM, "worker", "chaos_app:engine", "--store", self.store_url]
        command += ["--broker", self.broker_url, "--namespace", self.namespace, *self.extra_args]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    @staticmethod
    def started(proc: subprocess.Popen[bytes]) -> bool:
        text = Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
        if proc.poll() is not None:
            raise RuntimeError(f"worker {proc.pid} exited ({proc.returncode}): {text[-2000:]}")
        return "worker started" in text

    async def wait_started(self, proc: subprocess.Popen[bytes]) -> None:
        await _eventually(lambda: self.started(proc), READY_TIMEOUT, f"worker {proc.pid} starts")

    def kill_one(self, rng: random.Random) -> subprocess.Popen[bytes] | None:
        """SIGKILL a random live worker and start its replacement; the replacement."""
        alive = self.alive()
        if not alive:
            return None
        victim = rng.choice(alive)
        return self.kill(victim)

    def kill(self, victim: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.kills.append((victim.pid, time.time()))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        return self.spawn()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


async def _eventually(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.05)


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run. Durations in seconds; ``chaos_for``: how long the kill loop (and the
    outages) go on; then the run only waits for the executions to end (``finish_within``)."""

    workers: int = 3
    executions: int = 100
    kill_every: float = 2.0
    chaos_for: float = 40.0
    finish_within: float = 120.0
    delay: float = 0.2  # each step's run time
    redis_restart_at: float | None = None  # seconds into the run (needs a PrivateRedis)
    broker_pause_at: float | None = None  # seconds into the run (needs a PrivateTansu)
    outage: float = 5.0  # how long the Redis restart / the broker pause lasts
    seed: int = 12


@dataclass
class ChaosReport:
    executions: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    lost: list[str] = field(default_factory=list)  # what is missing, one line each
    double_joins: list[str] = field(default_factory=list)
    double_finals: list[str] = field(default_factory=list)  # two execution.final events
    reruns_after_commit: list[str] = field(default_factory=list)
    steps: int = 0  # distinct steps that ran
    runs: int = 0  # step runs (starts)
    kills: int = 0
    recoveries: list[float] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)  # in-flight steps never started again
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates_per_1000(self) -> float:
        return 0.0 if not self.steps else (self.runs - self.steps) * 1000 / self.steps

    def recovery_summary(self) -> str:
        if not self.recoveries:
            return "recovery: no step was in flight at a kill"
        ordered = sorted(self.recoveries)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return (
            f"recovery (SIGKILL -> the step starts again elsewhere, n={len(ordered)}): "
            f"median {statistics.median(ordered):.2f}s, p99 {p99:.2f}s, max {ordered[-1]:.2f}s"
        )

    def summary(self) -> str:
        lines = [
            f"executions: {self.executions} in {self.elapsed:.0f}s, {self.kills} SIGKILLs",
            f"final statuses: {dict(sorted(self.statuses.items()))}, unfinished: {self.unfinished}",
            f"lost: {len(self.lost)}",
            f"double joins: {len(self.double_joins)}",
            f"executions with two final-status events: {len(self.double_finals)}",
            f"re-runs after commit: {len(self.reruns_after_commit)}",
            f"duplicates: {self.duplicates_per_1000:.1f} per 1,000 steps "
            f"({self.runs} runs of {self.steps} steps)",
            self.recovery_summary(),
            *self.notes,
        ]
        details = self.lost[:5] + self.double_joins[:5] + self.double_finals[:5]
        details += self.reruns_after_commit[:5] + self.unrecovered[:5]
        return "\n".join(lines + [f"  e.g. {d}" for d in details])


def inputs(index: int, run_log: Path, delay: float) -> tuple[str, dict[str, Any]]:
    shape = SHAPES[index % len(SHAPES)]
    route = "left" if (index // len(SHAPES)) % 2 == 0 else "right"
    return shape, {"run_log": str(run_log), "delay": delay, "route": route}


def client_runtime(fleet: WorkerFleet) -> Runtime:
    settings = Settings(
        store_url=fleet.store_url, broker_url=fleet.broker_url, namespace=fleet.namespace
    )
    return Runtime.from_settings(build_engine(), settings, workers=False)


async def run_chaos(
    config: ChaosConfig,
    fleet: WorkerFleet,
    *,
    redis: PrivateRedis | None = None,
    broker: PrivateTansu | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChaosReport:
    """The chaos run ``config`` describes, on ``fleet``'s services (module docstring)."""
    say = progress or (lambda _: None)
    rng, run_log = random.Random(config.seed), fleet.folder / "runs.log"
    started = time.monotonic()
    for _ in range(config.workers):
        fleet.spawn()
    await asyncio.gather(*(fleet.wait_started(p) for p in fleet.procs))
    say(f"{config.workers} workers started in {time.monotonic() - started:.1f}s")
    async with client_runtime(fleet) as client:
        ids: dict[str, tuple[str, str]] = {}
        for index in range(config.executions):
            shape, values = inputs(index, run_log, config.delay)
            ids[await client.engine.execute_async(shape, values)] = (shape, values["route"])
        say(f"{len(ids)} executions submitted")
        begun = time.monotonic()
        outages = _outages(config, redis, broker, say)
        await _kill_loop(config, fleet, client, list(ids), rng, say)
        await outages
        done = await _wait_final(client, list(ids), begun + config.finish_within, say)
        report = await analyse(client, ids, read_run_log(run_log), fleet.kills)
    report.unfinished = len(ids) - done
    report.elapsed = time.monotonic() - begun
    return report


def _outages(
    config: ChaosConfig,
    redis: PrivateRedis | None,
    broker: PrivateTansu | None,
    say: Callable[[str], None],
) -> Awaitable[Any]:
    async def after(delay: float, outage: Callable[[float], Awaitable[None]], what: str) -> None:
        await asyncio.sleep(delay)  # the schedule of the run: nothing to poll for
        say(f"{what} for {config.outage:g}s")
        await outage(config.outage)
        say(f"{what}: over")

    planned = []
    if redis is not None and config.redis_restart_at is not None:
        planned.append(after(config.redis_restart_at, redis.outage, "redis down (restart)"))
    if broker is not None and config.broker_pause_at is not None:
        planned.append(after(config.broker_pause_at, broker.outage, "broker paused"))
    return asyncio.gather(*planned)


async def _finished(client: Runtime, ids: list[str]) -> int:
    try:
        finals = await client.engine.persistence.finals(ids)
    except Exception:  # the store may be down on purpose right now
        return -1
    return sum(final is not None for final in finals)


async def _kill_loop(
    config: ChaosConfig,
    fleet: WorkerFleet,
    client: Runtime,
    ids: list[str],
    rng: random.Random,
    say: Callable[[str], None],
) -> None:
    stop_at = time.monotonic() + config.chaos_for
    while time.monotonic() < stop_at:
        await asyncio.sleep(config.kill_every)  # the kill cadence itself: nothing to poll for
        if await _finished(client, ids) == len(ids):
            say("every execution ended before the kill loop did")
            return
        fleet.kill_one(rng)
        say(f"kill {len(fleet.kills)}: {await _finished(client, ids)}/{len(ids)} ended")


async def _wait_final(
    client: Runtime, ids: list[str], deadline: float, say: Callable[[str], None]
) -> int:
    done = -1
    while time.monotonic() < deadline:
        done = await _finished(client, ids)
        if done == len(ids):
            return done
        await asyncio.sleep(0.5)
    say(f"gave up waiting: {done}/{len(ids)} ended")
    return max(done, 0)


# -- the analysis -----------------------------------------------------------------------------


async def analyse(
    client: Runtime,
    ids: dict[str, tuple[str, str]],
    runs: list[RunLine],
    kills: list[tuple[int, float]],
) -> ChaosReport:
    """Measure what the run left in the store and the run log (module docstring)."""
    report = ChaosReport(executions=len(ids), kills=len(kills))
    starts: dict[tuple[str, str], list[RunLine]] = defaultdict(list)
    for line in runs:
        if line.kind == "start":
            starts[(line.execution_id, line.step)].append(line)
    interrupted = _interrupted(runs, kills)
    for eid, (shape, route) in ids.items():
        snapshot = await client.engine.get_execution_status(eid)
        report.statuses[snapshot.status] += 1
        report.lost += _missing(snapshot, expected_steps(shape, route))
        report.reruns_after_commit += _reruns(snapshot, starts)
        finals = [e async for e in client.engine.events(eid) if e.type == "execution.final"]
        if len(finals) > 1:
            report.double_finals.append(f"{eid}: {len(finals)} execution.final events")
        join = JOINS.get(shape)
        if join is not None:
            fired = [s for s in starts[(eid, join)] if s not in interrupted]
            if len(fired) > 1:
                report.double_joins.append(f"{eid}/{join} ran to the end {len(fired)} times")
    report.steps = len(starts)
    report.runs = sum(len(lines) for lines in starts.values())
    report.recoveries, report.unrecovered = _recoveries(starts, interrupted, kills)
    return report


def _interrupted(runs: list[RunLine], kills: list[tuple[int, float]]) -> set[RunLine]:
    """Starts in a killed process that logged no end: the runs a kill explains."""
    killed = {pid for pid, _ in kills}
    ended = {(r.execution_id, r.step, r.attempt, r.pid) for r in runs if r.kind == "end"}
    return {
        r
        for r in runs
        if r.kind == "start"
        and r.pid in killed
        and (r.execution_id, r.step, r.attempt, r.pid) not in ended
    }


def _missing(snapshot: ExecutionSnapshot, expected: dict[str, str]) -> list[str]:
    eid = snapshot.execution_id
    if snapshot.status != "completed":
        return [f"{eid}: {snapshot.status} ({snapshot.error})"]
    missing = []
    for step, status in expected.items():
        record = snapshot.steps.get(step)
        got = None if record is None else record.status
        if got != status:
            missing.append(f"{eid}/{step}: {got}, not {status}")
        elif status == "completed" and record is not None and record.output is None:
            missing.append(f"{eid}/{step}: completed without its output")
    return missing


def _reruns(snapshot: ExecutionSnapshot, starts: dict[tuple[str, str], list[RunLine]]) -> list[str]:
    eid, found = snapshot.execution_id, []
    for step, record in snapshot.steps.items():
        if record.status != "completed" or record.finished_at is None:
            continue
        late = [s for s in starts[(eid, step)] if s.at > record.finished_at]
        if late:
            found.append(f"{eid}/{step} started {len(late)}x after its commit")
    return found


def _recoveries(
    starts: dict[tuple[str, str], list[RunLine]],
    interrupted: set[RunLine],
    kills: list[tuple[int, float]],
) -> tuple[list[float], list[str]]:
    killed_at = dict(kills)
    times, never = [], []
    for cut in interrupted:
        at = killed_at[cut.pid]
        later = [s.at for s in starts[(cut.execution_id, cut.step)] if s.at > at]
        if later:
            times.append(min(later) - at)
        else:
            never.append(f"{cut.execution_id}/{cut.step} (killed with pid {cut.pid})")
    return times, never


# -- single kills: recovery time --------------------------------------------------------------


async def run_recovery(
    fleet: WorkerFleet,
    *,
    kills: int = 20,
    workers: int = 4,
    load: int = 2,
    delay: float = 3.0,
    progress: Callable[[str], None] | None = None,
) -> ChaosReport:
    """``kills`` single SIGKILLs, one at a time: each waits until a worker runs a step (one no
    earlier kill interrupted), kills it, and waits until that step starts again elsewhere (and
    the replacement is up). ``load`` chains of ``delay``-second steps per worker run throughout
    (the default 2 leaves half of a default worker's 4 slots free; 4 or more saturates them)."""
    say = progress or (lambda _: None)
    for _ in range(workers):
        fleet.spawn()
    await asyncio.gather(*(fleet.wait_started(p) for p in fleet.procs))
    begun = time.monotonic()
    async with client_runtime(fleet) as client:
        load_ = _Load(client, fleet.folder / "runs.log", workers * load, delay)
        for number in range(kills):
            victim, step = await _busy_worker(fleet, load_)
            replacement = fleet.kill(victim)
            again = await _restarted(load_, step, fleet.kills[-1][1])
            say(f"kill {number + 1}/{kills}: {step[0]}/{step[1]} {again}")
            await fleet.wait_started(replacement)
        for eid in load_.ids:
            await client.engine.cancel(eid)
        report = await analyse(client, {}, read_run_log(load_.run_log), fleet.kills)
    report.elapsed = time.monotonic() - begun
    return report


@dataclass
class _Load:
    """Chains kept running (``running`` at a time) while ``run_recovery`` kills workers."""

    client: Runtime
    run_log: Path
    running: int
    delay: float
    ids: list[str] = field(default_factory=list)
    targeted: set[tuple[str, str]] = field(default_factory=set)

    async def top_up(self) -> None:
        values = {"run_log": str(self.run_log), "delay": self.delay}
        while len(self.ids) - await _finished(self.client, self.ids) < self.running:
            self.ids.append(await self.client.engine.execute_async("chain", values))


async def _busy_worker(
    fleet: WorkerFleet, load: _Load
) -> tuple[subprocess.Popen[bytes], tuple[str, str]]:
    """A live worker running a step (for half a second at least) that no kill interrupted."""
    rng, deadline = random.Random(len(fleet.kills)), time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        await load.top_up()
        runs = read_run_log(load.run_log)
        ended = {(r.execution_id, r.step, r.pid) for r in runs if r.kind == "end"}
        alive = {p.pid: p for p in fleet.alive()}
        found = [
            (alive[r.pid], (r.execution_id, r.step))
            for r in runs
            if r.kind == "start"
            and r.pid in alive
            and (r.execution_id, r.step) not in load.targeted
            and (r.execution_id, r.step, r.pid) not in ended
            and time.time() - r.at > 0.5
        ]
        if found:
            victim, step = rng.choice(found)
            load.targeted.add(step)
            return victim, step
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no worker ran a step within {READY_TIMEOUT:g}s")


async def _restarted(load: _Load, step: tuple[str, str], after: float) -> str:
    """How long ``step`` took to start again after ``after`` (or why it did not)."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        again = [
            r.at
            for r in read_run_log(load.run_log)
            if r.kind == "start" and (r.execution_id, r.step) == step and r.at > after
        ]
        if again:
            return f"ran again after {min(again) - after:.2f}s"
        final = await load.client.engine.persistence.final(step[0])
        if final is not None:
            return f"never ran again: its execution ended {final.status} ({final.error})"
        await asyncio.sleep(0.05)
    return "did not run again within 120s"


# -- services ---------------------------------------------------------------------------------


def unique_namespace(label: str) -> str:
    return f"flowloom-{label}-{uuid.uuid4().hex[:8]}"


async def delete_namespace(redis_url: str, namespace: str) -> None:
    """Remove every key of ``namespace`` (its key prefix ``namespace/``) from a shared Redis,
    through the store, so they leave its key index too, and the namespace's event logs (a
    raw delete left ~10,000 index entries and their logs behind per suite run)."""
    await delete_keys(redis_url, f"{namespace}/")
