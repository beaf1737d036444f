"""Building blocks of the distributed scenarios: a probe node type and blueprint shorthand."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from support import KAFKA_OPTIONS, require_redis

from distributed import KVPersistence, PoolConfig, Runtime, WorkerConfig
from distributed.events import EventRecorder
from distributed.final_watch import FinalWatch
from orchestration import Node, NodeContext, NodeResult, NonRetryableError
from store import Delete, open_store

FAST_POOL = PoolConfig(
    worker_count=2,
    concurrency=8,
    reaper_interval=0.2,
    worker=WorkerConfig(lease_ttl=2.0, watch_interval=0.1, grace_period=5.0),
)


# How late an asyncio task may run on a loaded two-core CI machine: every timing bound of the
# suite is (what the configuration promises) + SCHEDULING_MARGIN, and the tests report what they
# measured, so a bound is honest (it follows the configured intervals) without being flaky.
SCHEDULING_MARGIN = 0.5


@dataclass
class Run:
    """One run of a probe step, as its code saw it (times are ``time.monotonic()``)."""

    execution_id: str
    node_id: str
    attempt: int
    idempotency_key: str
    started_at: float
    ended_at: float | None = None  # the code returned (or raised) on its own
    cancelled_at: float | None = None  # the code was cancelled


class Probe:
    """A test node type. ``params``: ``wait_for`` a node to start first, ``gate`` (wait until
    the test calls ``open_gate`` with that name), ``delay`` seconds (only on attempts up to
    ``delay_attempts``, when given), ``fail_times`` failing attempts,
    ``fail`` (never succeeds), ``action``, ``output``, ``non_json`` (returns an object that is
    not JSON), ``report_view`` (returns the names of the outputs and state keys it sees).
    Records every run (``history``: attempt, idempotency key, times) and every cancellation it
    sees."""

    def __init__(self) -> None:
        self.runs: Counter[tuple[str, str]] = Counter()
        self.cancelled: list[tuple[str, str]] = []
        self.started: set[tuple[str, str]] = set()
        self.history: list[Run] = []
        self._start_events: dict[tuple[str, str], asyncio.Event] = {}
        self._gates: dict[str, asyncio.Event] = {}

    def open_gate(self, name: str) -> None:
        """Let every step waiting on gate ``name`` go on (and any that reach it later)."""
        self._gates.setdefault(name, asyncio.Event()).set()

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        key = (ctx.execution_id, node.id)
        run = Run(ctx.execution_id, node.id, ctx.attempt, ctx.idempotency_key, time.monotonic())
        self.history.append(run)
        self.runs[key] += 1
        self.started.add(key)
        self._start_event(key).set()
        _log(ctx, f"start {ctx.execution_id} {node.id}")
        params = node.params
        try:
            await self._wait_for(ctx.execution_id, params.get("wait_for"))
            await self._pass_gate(params.get("gate"))
            await asyncio.sleep(_delay(params, ctx.attempt))
        except asyncio.CancelledError:
            run.cancelled_at = time.monotonic()
            self.cancelled.append(key)
            raise
        finally:
            if run.cancelled_at is None:
                run.ended_at = time.monotonic()
        if params.get("fail"):
            raise NonRetryableError(f"{node.id} fails on purpose")
        if ctx.attempt <= int(params.get("fail_times", 0)):
            raise RuntimeError(f"{node.id} attempt {ctx.attempt} fails")
        output = params.get("output", f"{node.id}:{ctx.state.get('x', '')}")
        if params.get("report_view"):  # what the step saw: outputs and state keys
            output = {"outputs": sorted(ctx.outputs), "state": sorted(ctx.state)}
        if params.get("non_json"):
            output = {"oops": object()}  # what a buggy step might return
        action = params.get("action") or ctx.state.get(f"route_{node.id}")
        _log(ctx, f"end {ctx.execution_id} {node.id}")
        return NodeResult(output=output, action=action, state_updates={node.id: output})

    async def _wait_for(self, execution_id: str, node_id: object) -> None:
        """Hold this step until ``node_id`` of the same execution has started (10 s at most)."""
        if not isinstance(node_id, str):
            return
        async with asyncio.timeout(10):
            await self._start_event((execution_id, node_id)).wait()

    async def _pass_gate(self, name: object) -> None:
        """Hold this step until the test opens gate ``name`` (30 s at most)."""
        if not isinstance(name, str):
            return
        async with asyncio.timeout(30):
            await self._gates.setdefault(name, asyncio.Event()).wait()

    def _start_event(self, key: tuple[str, str]) -> asyncio.Event:
        return self._start_events.setdefault(key, asyncio.Event())

    def runs_of(self, execution_id: str) -> dict[str, int]:
        return {node: n for (eid, node), n in self.runs.items() if eid == execution_id}

    def history_of(self, execution_id: str, node_id: str) -> list[Run]:
        """The runs of one step, in the order they started."""
        return [r for r in self.history if (r.execution_id, r.node_id) == (execution_id, node_id)]


def _delay(params: Mapping[str, Any], attempt: int) -> float:
    limit = params.get("delay_attempts")
    if limit is not None and attempt > int(limit):
        return 0.0
    return float(params.get("delay", 0))


def _log(ctx: NodeContext, line: str) -> None:
    """Append to the file named by the ``run_log`` input: how crash tests see other processes."""
    path = ctx.state.get("run_log")
    if isinstance(path, str):
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def plain(*node_ids: str) -> dict[str, dict[str, Any]]:
    """Probe nodes with no parameters."""
    return {node_id: {} for node_id in node_ids}


def blueprint(
    bid: str,
    nodes: Mapping[str, Any],
    edges: Sequence[tuple[str, ...]],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A blueprint of ``probe`` nodes: ``nodes`` maps id -> params; edges (src, dst[, action])."""
    configs = configs or {}
    return {
        "id": bid,
        "nodes": [
            {"id": n, "uses": "probe", "params": dict(p), "config": dict(configs.get(n, {}))}
            for n, p in nodes.items()
        ],
        "edges": [
            {"source": e[0], "target": e[1], **({"action": e[2]} if len(e) == 3 else {})}
            for e in edges
        ],
    }


def views_blueprint(bid: str, gate: str) -> dict[str, Any]:
    """root -> fast -> join and root -> slow -> reader -> join, where ``reader`` and ``join``
    return what they see (``VIEWS``) and ``slow`` waits on ``gate``: opened once ``fast`` has
    completed, ``reader`` starts after a parallel branch completed."""
    seen = {"report_view": True}
    nodes = {"root": {}, "fast": {}, "slow": {"gate": gate}, "reader": seen, "join": seen}
    edges = [("root", "fast"), ("root", "slow"), ("slow", "reader")]
    return blueprint(bid, nodes, [*edges, ("fast", "join"), ("reader", "join")])


VIEWS = {
    "reader": {"outputs": ["root", "slow"], "state": ["root", "slow", "x"]},  # inputs {"x": 1}
    "join": {
        "outputs": ["fast", "reader", "root", "slow"],
        "state": ["fast", "reader", "root", "slow", "x"],
    },
}


async def step_completed(runtime: Runtime, eid: str, node_id: str, timeout: float) -> None:
    """Until step ``node_id`` of execution ``eid`` has committed its result."""
    async with asyncio.timeout(timeout):
        while True:
            step = (await runtime.engine.get_execution_status(eid)).steps.get(node_id)
            if step is not None and step.status == "completed":
                return
            await asyncio.sleep(0.02)


RuntimeFactory = Callable[..., Runtime]

# Short group timeouts, and a short fetch long-poll: Tansu holds a waiting fetch's answer for
# about half of fetch_max_wait_ms even when data arrives (Kafka answers at once).
TANSU_OPTIONS = KAFKA_OPTIONS


async def hearing_finals(persistence: object, finals: FinalWatch) -> bool:
    """Tell another execution final (as a worker of another process would) and say whether
    the listener of ``finals`` heard it: poll it with ``assert_eventually`` until it has."""
    assert isinstance(persistence, KVPersistence)
    await persistence.store.publish(persistence.keys.finals_channel(), b"another")
    await asyncio.sleep(0.05)
    return finals.hearing


async def delete_prefix(prefix: str) -> None:
    """Remove what a cluster test wrote to the shared Redis (only its own prefix)."""
    store = open_store(require_redis(), prefix=prefix)
    try:
        keys = [key async for key, _ in store.scan("")]
        for start in range(0, len(keys), 500):
            await store.batch([Delete(k) for k in keys[start : start + 500]])
    finally:
        await store.close()
    await delete_raw_prefix(require_redis(), prefix)


async def delete_raw_prefix(url: str, prefix: str) -> None:
    """Remove every Redis key under ``prefix`` that ``scan`` does not list (the event logs'
    streams, ``prefix + "\\x00log:..."``)."""
    client = aioredis.Redis.from_url(url)
    try:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        keys = [key async for key in client.scan_iter(match=pattern, count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def set_retention(runtime: Runtime, seconds: float) -> None:
    """Give the runtime's persistence and event log a retention (built without one)."""
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    persistence.retention = seconds
    for hook in runtime.engine.context.hooks.hooks:
        if isinstance(hook, EventRecorder):
            hook.retention = seconds
