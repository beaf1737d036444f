"""The processes of the cluster tests (``test_cluster_processes.py``): real pools, real crashes.

    python tests/distributed/cluster_app.py worker STORE_URL PREFIX BROKER_URL TAG [options]
        a worker pool on Redis + Kafka; prints "ready" once started, stops gracefully on SIGTERM
        --hooks-log FILE   appends every lifecycle hook event it sees, one JSON object a line
        --sweep-log FILE   appends "<pid> <time.time()>" for every recovery sweep it performs
        --sweeper          a sweep short enough to time a leader hand-over (SWEEP_RECOVERY)
    python tests/distributed/cluster_app.py embedded DATA_DIR [--submit N --run-log FILE]
        an embedded runtime on DATA_DIR that picks up its unfinished executions, until killed
        --submit N         it also submits N executions itself (ids submitted-0, ...), whose
                           start steps are leased to its own slots in the writes that record
                           them; --run-log FILE is their run_log input

Started with ``FLOWLOOM_FAILPOINT`` set, a process exits with 137 at that point
(``distributed.failpoints``). Steps append "start/end <execution> <step>" to the ``run_log``
input, so a test sees what ran in a process that died.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import time
from dataclasses import replace
from typing import Any

from scenario_support import FAST_POOL, TANSU_OPTIONS, Probe, blueprint

from distributed import (
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    Hooks,
    PoolConfig,
    RecoveryConfig,
    RecoveryManager,
    Runtime,
    StepFinished,
    StepStarted,
    SweepReport,
)
from distributed.hooks import DeadLettered, LeaseExpired, RetryScheduled
from orchestration import Engine

WORKFLOW = "fanout"
BRANCHES = ("b1", "b2", "b3", "b4")
STEPS = ("fan", *BRANCHES, "join")
SWEEP_RECOVERY = RecoveryConfig(interval=0.1, leader_ttl=1.0)


def build_engine() -> Engine:
    """``fan`` fans out to four branches that ``join`` waits for (an ``all`` join)."""
    engine = Engine()
    engine.node_types.register("probe", Probe())
    edges = [("fan", b) for b in BRANCHES] + [(b, "join") for b in BRANCHES]
    engine.register_blueprint(blueprint(WORKFLOW, {step: {} for step in STEPS}, edges))
    return engine


def pool_config(
    tag: str | None = None, *, worker_count: int = 1, recovery: RecoveryConfig | None = None
) -> PoolConfig:
    """The suite's fast pool, in the tag's consumer group; ``recovery`` replaces its sweep."""
    config = replace(FAST_POOL, worker_count=worker_count)
    if tag is not None:
        config = replace(config, worker=replace(config.worker, group=f"{tag}.workers"))
    if recovery is not None:  # reaper_interval would override the recovery interval
        config = replace(config, reaper_interval=None, recovery=recovery)
    return config


def cluster_runtime(
    engine: Engine, store_url: str, prefix: str, broker_url: str, tag: str, **kw: Any
) -> Runtime:
    """A runtime in the tag's namespace, topic and Redis prefix."""
    return Runtime.from_urls(
        engine,
        store_url=store_url,
        broker_url=broker_url,
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        store_options={"prefix": prefix},
        broker_options=TANSU_OPTIONS,
        **kw,
    )


def event_line(name: str, event: object) -> str:
    """One hook event as a JSON line: its name, this pid and the event's fields."""
    assert dataclasses.is_dataclass(event) and not isinstance(event, type)
    return json.dumps({"event": name, "pid": os.getpid(), **dataclasses.asdict(event)}) + "\n"


class RecordingHooks(Hooks):
    """Appends every event to ``path`` (one JSON object a line), as it happens."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _record(self, name: str, event: object) -> None:
        append(self.path, event_line(name, event))

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        self._record("execution_submitted", event)

    def step_started(self, event: StepStarted) -> None:
        self._record("step_started", event)

    def step_finished(self, event: StepFinished) -> None:
        self._record("step_finished", event)

    def retry_scheduled(self, event: RetryScheduled) -> None:
        self._record("retry_scheduled", event)

    def lease_expired(self, event: LeaseExpired) -> None:
        self._record("lease_expired", event)

    def dead_lettered(self, event: DeadLettered) -> None:
        self._record("dead_lettered", event)

    def execution_final(self, event: ExecutionFinished) -> None:
        self._record("execution_final", event)

    def execution_control(self, event: ExecutionControl) -> None:
        self._record("execution_control", event)


class LoggedRecovery(RecoveryManager):
    """A ``RecoveryManager`` that appends "<pid> <time.time()>" to ``sweep_log`` before each
    sweep it performs (``run`` sweeps only as leader, right after renewing the lease)."""

    sweep_log: str = os.devnull

    async def sweep(self) -> SweepReport:
        append(self.sweep_log, f"{os.getpid()} {time.time():.6f}\n")
        return await super().sweep()


def append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line)


def log_sweeps(runtime: Runtime, path: str) -> None:
    """Give the runtime's (not yet started) pool a sweep that logs to ``path``."""
    pool = runtime.pool
    assert pool is not None
    recovery = LoggedRecovery.from_context(pool.context, pool.config.recovery_config())
    assert isinstance(recovery, LoggedRecovery)
    recovery.sweep_log = path
    pool.recovery = recovery


async def until_terminated() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def run_worker(args: argparse.Namespace) -> None:
    hooks = RecordingHooks(args.hooks_log) if args.hooks_log else None
    recovery = SWEEP_RECOVERY if args.sweeper else None
    runtime = cluster_runtime(
        build_engine(),
        args.store_url,
        args.prefix,
        args.broker_url,
        args.tag,
        pool=pool_config(args.tag, recovery=recovery),
        hooks=hooks,
    )
    if args.sweep_log:
        log_sweeps(runtime, args.sweep_log)
    async with runtime:
        print("ready", flush=True)
        await until_terminated()


async def run_embedded(data_dir: str, submit: int, run_log: str | None) -> None:
    pool = pool_config(worker_count=2)
    async with Runtime.embedded(build_engine(), data_dir, pool=pool) as runtime:
        for i in range(submit):
            inputs = {"run_log": run_log}
            await runtime.engine.execute_async(WORKFLOW, inputs, execution_id=f"submitted-{i}")
        print("ready", flush=True)
        await until_terminated()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cluster_app")
    modes = parser.add_subparsers(dest="mode", required=True)
    worker = modes.add_parser("worker")
    for name in ("store_url", "prefix", "broker_url", "tag"):
        worker.add_argument(name)
    worker.add_argument("--hooks-log")
    worker.add_argument("--sweep-log")
    worker.add_argument("--sweeper", action="store_true")
    embedded = modes.add_parser("embedded")
    embedded.add_argument("data_dir")
    embedded.add_argument("--submit", type=int, default=0)
    embedded.add_argument("--run-log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse()
    if options.mode == "worker":
        asyncio.run(run_worker(options))
    else:
        asyncio.run(run_embedded(options.data_dir, options.submit, options.run_log))
