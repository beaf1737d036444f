"""``InstrumentedEngine``: a ``DistributedEngine`` whose runtime exports Prometheus metrics.

    collector = PrometheusCollector()
    engine = InstrumentedEngine(runtime.engine, collector, pool=runtime.pool)
    server = serve_metrics(collector, port=9464)

Nothing in the engine, the workers or the recovery sweep knows about metrics: the wrapper adds
``MetricsHooks`` to the runtime context's hooks (DESIGN §9), so everything that shares the
context -- the engine, the pool's workers, the recovery sweep -- is observed through the
lifecycle events. This is the only module of ``distributed`` that imports ``metrics``.

Where each number comes from (``docs/metrics.md`` has the table):

- counters and histograms: one lifecycle event each, in the process where it happened, so the
  sum over every process of a cluster counts each event once (completions once per execution:
  only the writer whose final status won reports one);
- ``steps_in_flight``, ``workers``, ``worker_slots``: this process's workers, kept from the worker
  and step events (and, for workers started before the wrapper, from ``pool``) and read by the
  collector at scrape time;
- ``queue_lag`` and ``executions_active``: sampled every ``sample_interval`` seconds on the
  event loop, from the workers' consumers and from the store's index of unfinished executions.
  Sampling starts when the wrapper is built inside a running event loop, or else with the first
  worker or submission it sees; ``await engine.sample()`` samples at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from metrics import MetricsCollector
from metrics.names import (
    DEAD_LETTERS,
    DISPATCH_LATENCY,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    EXECUTIONS_ACTIVE,
    LEASE_EXPIRED,
    PAUSES,
    QUEUE_LAG,
    RECOVERIES,
    RESUMES,
    STEP_DURATION,
    STEP_RETRIES,
    STEPS_IN_FLIGHT,
    WORKER_SLOTS,
    WORKERS,
)
from store import StoreClosed

from .context import RuntimeContext
from .engine import DistributedEngine
from .errors import InvalidSettings
from .hooks import (
    DeadLettered,
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    Hooks,
    LeaseExpired,
    RetryScheduled,
    StepFinished,
    StepStarted,
    WorkerStarted,
    WorkerStopped,
)
from .persistence import WorkflowPersistence
from .pool import WorkerPool
from .timebox import reraise_if_cancelling
from .worker import Worker

__all__ = ["InstrumentedEngine", "MetricsHooks", "dead_letter_reason"]

log = logging.getLogger(__name__)

LagProbe = Callable[[], Awaitable[Mapping[int, int]]]

# Free-text dead-letter reasons -> the bounded ``reason`` label (first match wins).
_DEAD_LETTER_PATTERNS = (
    ("not a task", "undecodable"),
    ("undecodable", "undecodable"),
    ("unknown execution", "unknown_execution"),
    ("has no step", "unknown_step"),
    ("delivery limit", "delivery_limit"),
)
_CONTROL_COUNTERS = {"paused": PAUSES, "resumed": RESUMES, "recovered": RECOVERIES}
_IDLE = {"state": "idle"}


def dead_letter_reason(reason: str) -> str:
    """The ``reason`` label of a dead letter: ``undecodable``, ``unknown_execution``,
    ``unknown_step``, ``delivery_limit`` or ``other`` (never the free text, which names ids)."""
    text = reason.lower()
    return next((label for pattern, label in _DEAD_LETTER_PATTERNS if pattern in text), "other")


class MetricsHooks(Hooks):
    """Lifecycle events -> metrics of ``metrics.names``, recorded into ``collector``.

    Keeps what the gauges need in this process -- the slots of each running worker, the
    attempts running, each worker consumer's lag probe -- and has the collector read the
    worker gauges at scrape time, so a step pays only for its two histogram observations.
    """

    def __init__(self, collector: MetricsCollector) -> None:
        self.collector = collector
        self.slots: dict[str, int] = {}  # worker id -> slots
        self.total_slots = 0
        self.in_flight = 0  # attempts running
        self.lag_probes: dict[str, LagProbe] = {}
        collector.set_function(STEPS_IN_FLIGHT, lambda: self.in_flight)
        collector.set_function(WORKERS, lambda: len(self.slots))
        collector.set_function(WORKER_SLOTS, self._busy, {"state": "busy"})
        collector.set_function(WORKER_SLOTS, lambda: self.total_slots - self._busy(), _IDLE)

    def _busy(self) -> int:
        return min(self.in_flight, self.total_slots)

    def adopt(self, workers: Iterable[Worker]) -> None:
        """Count workers that started before these hooks were installed."""
        for worker in workers:
            self._add_worker(worker.id, worker.config.concurrency)

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        self.collector.inc(EXECUTION_STARTED, {"workflow": event.workflow_id})

    def execution_final(self, event: ExecutionFinished) -> None:
        labels = {"workflow": event.workflow_id, "status": event.status}
        self.collector.inc(EXECUTION_COMPLETED, labels)

    def execution_control(self, event: ExecutionControl) -> None:
        self.collector.inc(_CONTROL_COUNTERS[event.action])

    def step_started(self, event: StepStarted) -> None:
        self.collector.observe(DISPATCH_LATENCY, event.dispatch_latency)
        self.in_flight += 1

    def step_finished(self, event: StepFinished) -> None:
        labels = {"workflow": event.workflow_id, "step": event.step_id, "outcome": event.outcome}
        self.collector.observe(STEP_DURATION, event.duration, labels)
        if self.in_flight > 0:  # else it started before the hooks were installed
            self.in_flight -= 1

    def retry_scheduled(self, event: RetryScheduled) -> None:
        self.collector.inc(STEP_RETRIES)

    def lease_expired(self, event: LeaseExpired) -> None:
        self.collector.inc(LEASE_EXPIRED)

    def dead_lettered(self, event: DeadLettered) -> None:
        self.collector.inc(DEAD_LETTERS, {"reason": dead_letter_reason(event.reason)})

    def worker_started(self, event: WorkerStarted) -> None:
        self._add_worker(event.worker_id, event.slots)
        if event.queue_lag is not None:
            self.lag_probes[event.worker_id] = event.queue_lag

    def worker_stopped(self, event: WorkerStopped) -> None:
        self.total_slots -= self.slots.pop(event.worker_id, 0)
        self.lag_probes.pop(event.worker_id, None)

    def _add_worker(self, worker_id: str, slots: int) -> None:
        self.total_slots += slots - self.slots.get(worker_id, 0)
        self.slots[worker_id] = slots


class _Sampler(Hooks):
    """Samples ``queue_lag`` and ``executions_active`` every ``interval`` seconds on the loop;
    starts with the first worker or submission it sees (or ``start``)."""

    def __init__(
        self, hooks: MetricsHooks, persistence: WorkflowPersistence, interval: float
    ) -> None:
        self.hooks = hooks
        self.persistence = persistence
        self.interval = interval
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (once)."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="metrics")

    def worker_started(self, event: WorkerStarted) -> None:
        self.start()

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        self.start()

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except StoreClosed:
                log.debug("the store is closed (the runtime is stopping): sampling ends")
                return
            except Exception as exc:
                reraise_if_cancelling(exc)
                log.warning("sampling metrics failed: %r", exc)
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """Count the unfinished executions in the store; read every consumer's lag."""
        collector = self.hooks.collector
        active = sum([1 async for _ in self.persistence.active_executions()])
        collector.set(EXECUTIONS_ACTIVE, active)
        lags = await self._lags()
        series = [({"partition": str(p)}, float(lag)) for p, lag in sorted(lags.items())]
        collector.replace_series(QUEUE_LAG, series)

    async def _lags(self) -> dict[int, int]:
        """Lag by partition over this process's consumers (each partition counted once: the
        in-process broker's consumers of one group share their queue)."""
        lags: dict[int, int] = {}
        for worker_id, probe in list(self.hooks.lag_probes.items()):
            try:
                found = await probe()
            except Exception as exc:
                reraise_if_cancelling(exc)
                log.warning("reading the queue lag of worker %s failed: %r", worker_id, exc)
                continue
            for partition, lag in found.items():
                lags[partition] = max(lag, lags.get(partition, 0))
        return lags


class InstrumentedEngine(DistributedEngine):
    """``engine``, instrumented: a ``DistributedEngine`` on ``engine``'s runtime context whose
    runtime reports to ``collector``.

    It shares ``engine``'s context (persistence, queue, scheduler, hooks) and its local runs, so
    it behaves as ``engine`` does and goes wherever a ``DistributedEngine`` goes
    (``RecoveryManager``, ``RemoteStep``). It adds ``MetricsHooks`` to that context's hooks --
    shared with the pool's workers and the recovery sweep -- and to ``pool``'s context when that
    is another one; ``pool`` also counts workers that started before this wrapper.
    ``sample_interval``: seconds between two samples of ``queue_lag`` and ``executions_active``
    (``InvalidSettings`` unless positive).
    """

    def __init__(
        self,
        engine: DistributedEngine,
        collector: MetricsCollector,
        *,
        pool: WorkerPool | None = None,
        sample_interval: float = 5.0,
    ) -> None:
        if sample_interval <= 0:
            raise InvalidSettings(f"sample_interval must be > 0 seconds, not {sample_interval}")
        self._setup(engine.context, engine.config)
        self._local_runs = engine._local_runs  # one set of local runs, whoever submitted them
        self.engine = engine
        self.collector = collector
        self.hooks = MetricsHooks(collector)
        self._sampler = _Sampler(self.hooks, engine.persistence, sample_interval)
        for context in _contexts(engine, pool):
            context.hooks.add(self.hooks)
            context.hooks.add(self._sampler)
        if pool is not None:
            self.hooks.adopt(pool.workers)
        with contextlib.suppress(RuntimeError):  # no running loop yet: starts with the first event
            self._sampler.start()

    async def sample(self) -> None:
        """Sample ``queue_lag`` and ``executions_active`` now."""
        await self._sampler.sample()

    async def close(self) -> None:
        """Stop sampling, then close as ``DistributedEngine.close`` does."""
        await self._sampler.stop()
        await super().close()


def _contexts(engine: DistributedEngine, pool: WorkerPool | None) -> list[RuntimeContext]:
    contexts = [engine.context]
    if pool is not None and pool.context is not engine.context:
        contexts.append(pool.context)
    return contexts
