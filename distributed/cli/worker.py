"""``flowloom worker APP``: run workers until SIGTERM/SIGINT, then stop in phases.

Shutdown phases (a second signal skips them and exits at once with code 130):

1. stop fetching: no new step starts here;
2. running steps get ``--grace-period`` seconds to finish;
3. the rest are cancelled and their leases released, so another worker runs them at once;
4. connections are closed.

``--check`` connects to the store and the broker, loads the definitions, and exits (0, or 5
when a service is unavailable). ``--processes N`` supervises N worker processes
(``supervisor``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from typing import Any

from mq import open_broker
from orchestration import Engine
from store import open_store

from ..queue import MQTaskQueue
from ..runtime import Runtime
from ..settings import Settings
from .app import load_definitions
from .errors import UserError, explain
from .exitcodes import EXIT_OK, EXIT_UNAVAILABLE
from .lifecycle import Signals
from .logs import WorkerLog
from .options import positive_float, positive_int, settings_from
from .output import emit_json, human, where_settings

__all__ = ["SUPERVISOR_ENV", "register", "serve"]

log = logging.getLogger("flowloom.worker")

SUPERVISOR_ENV = "FLOWLOOM_SUPERVISOR_PID"
"""Set in the children of ``--processes``: they stop when that process is gone."""


def register(
    commands: Any,
    common: argparse.ArgumentParser,
    connection: argparse.ArgumentParser,
    definitions: argparse.ArgumentParser,
) -> None:
    """Add ``worker`` to ``commands`` (argparse subparsers)."""
    worker = commands.add_parser(
        "worker",
        parents=[common, connection, definitions],
        help="run workers: APP is module:object (an Engine or Workflows), or --blueprints DIR",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("app", nargs="?", metavar="APP", help="module:object (or FLOWLOOM_APP)")
    worker.add_argument("--concurrency", type=positive_int, help="steps at once per worker")
    worker.add_argument("--workers", type=positive_int, help="workers in each process")
    worker.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="supervised worker processes (restarted when one dies)",
    )
    worker.add_argument(
        "--grace-period",
        type=positive_float,
        metavar="S",
        help="how long running steps may finish on shutdown",
    )
    worker.add_argument(
        "--lease-ttl",
        type=positive_float,
        metavar="S",
        help="a dead worker's step runs elsewhere after this",
    )
    worker.add_argument(
        "--metrics-port",
        type=positive_int,
        metavar="PORT",
        help="serve Prometheus /metrics on 127.0.0.1:PORT (FLOWLOOM_METRICS_HOST to bind "
        "elsewhere; with --processes N, child i uses PORT+i)",
    )
    worker.add_argument(
        "--check", action="store_true", help="check connections and definitions, then exit"
    )
    worker.set_defaults(handler=worker_command, default_log_level="INFO")


async def worker_command(args: argparse.Namespace) -> int:
    """``flowloom worker``: check, supervise N processes, or serve in this one."""
    settings = settings_from(
        args,
        concurrency=args.concurrency,
        workers=args.workers,
        grace_period=args.grace_period,
        lease_ttl=args.lease_ttl,
        metrics_port=args.metrics_port,
    )
    engine = load_definitions(settings, args.provider)
    if not engine.workflows():
        raise UserError("no workflows to run: give APP (module:object) or --blueprints DIR")
    if args.processes > 1 and not args.check:
        from .supervisor import supervise

        return await supervise(args.argv, args.processes, metrics_port=settings.metrics_port)
    if args.check:
        return await check(settings, engine, as_json=args.json)
    return await serve(settings, engine)


async def serve(settings: Settings, engine: Engine) -> int:
    """Run a worker pool until a signal, then stop in phases (module docstring)."""
    with Signals(
        "second signal: exiting now; unfinished steps run elsewhere once their leases expire"
    ) as signals:
        runtime = Runtime.from_settings(engine, settings, hooks=WorkerLog())
        metrics = _serve_metrics(runtime, settings)
        try:
            await runtime.start()
        except BaseException:
            await runtime.close(grace_period=0, close_timeout=2.0)
            raise
        _log_started(settings, engine)
        watchdog = asyncio.create_task(_watch_supervisor(signals))
        signum = await signals.wait()
        watchdog.cancel()
        await _shutdown(runtime, settings, signum)
        if metrics is not None:
            metrics.close()
    return EXIT_OK


def _serve_metrics(runtime: Runtime, settings: Settings) -> Any:
    """With ``metrics_port``: instrument the runtime and serve ``/metrics`` (else None)."""
    if settings.metrics_port is None:
        return None
    from metrics import PrometheusCollector, serve_metrics

    from ..instrumented import InstrumentedEngine

    collector = PrometheusCollector()
    InstrumentedEngine(runtime.engine, collector, pool=runtime.pool)
    server = serve_metrics(collector, port=settings.metrics_port, host=settings.metrics_host)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return server


def _log_started(settings: Settings, engine: Engine) -> None:
    log.info(
        "worker started: %d worker(s) x %d slots · %s · topic %s · group %s · workflows: %s",
        settings.workers,
        settings.concurrency,
        where_settings(settings),
        settings.topic,
        settings.group,
        ", ".join(sorted(engine.workflows())),
    )
    if settings.embedded:
        log.info(
            "embedded (in-process broker): only this process can run executions of this "
            "store; use redis:// + kafka:// to share work between processes"
        )


async def _shutdown(runtime: Runtime, settings: Settings, signum: int) -> None:
    started = time.monotonic()
    log.info(
        "shutdown (signal %d): phase 1: stopped fetching new steps; phase 2: running steps "
        "get up to %gs to finish",
        signum,
        settings.grace_period,
    )
    if runtime.pool is not None:
        await runtime.pool.stop()
    log.info("shutdown: phase 3: unfinished steps cancelled and their leases released")
    await runtime.close(close_timeout=5.0)
    log.info(
        "shutdown: phase 4: connections closed; worker stopped in %.1fs", time.monotonic() - started
    )


async def _watch_supervisor(signals: Signals) -> None:
    """In a child of ``--processes``: stop when the supervisor is gone."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return
    while os.getppid() == int(supervisor):  # noqa: ASYNC110  (no event tells of a parent's death)
        await asyncio.sleep(0.5)
    log.warning("the supervisor (pid %s) is gone: stopping", supervisor)
    signals.signum = 15
    signals.received.set()


# -- --check ----------------------------------------------------------------------------------


async def check(settings: Settings, engine: Engine, *, as_json: bool) -> int:
    """Connect to the store and the broker, report the definitions; 0 if all answer."""
    checks = [await _check_store(settings), await _check_broker(settings)]
    workflows = sorted(engine.workflows())
    ok = all(item["ok"] for item in checks)
    if as_json:
        emit_json(
            {"ok": ok, "checks": checks, "workflows": workflows, "settings": settings.describe()}
        )
    else:
        for item in checks:
            state = f"ok ({item['ms']:.0f} ms)" if item["ok"] else f"FAILED: {item['error']}"
            human(f"{item['name']:<9} {item['where']:<50} {state}")
        human(f"{'workflows':<9} {', '.join(workflows)} ({len(workflows)}, all valid)")
        human("ok: a worker can start" if ok else "not ok: a worker cannot start")
    return EXIT_OK if ok else EXIT_UNAVAILABLE


async def _check_store(settings: Settings) -> dict[str, Any]:
    where = f"{settings.describe()['store_url']} (keys {settings.key_prefix})"

    async def probe() -> None:
        store = open_store(settings.store_url, **settings.store_options)
        try:
            await store.get(f"{settings.key_prefix}check")
        finally:
            await store.close()

    return await _timed("store", where, probe())


async def _check_broker(settings: Settings) -> dict[str, Any]:
    where = f"{settings.describe()['broker_url']} (topic {settings.topic})"

    async def probe() -> None:
        broker = open_broker(settings.broker_url, **settings.broker_options)
        try:
            queue = MQTaskQueue(broker, topic=settings.topic or "")
            await broker.ensure_topic(queue.topic, queue.partitions)
        finally:
            await broker.close()

    return await _timed("broker", where, probe())


async def _timed(name: str, where: str, probe: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        await probe
    except Exception as exc:
        return {"name": name, "where": where, "ok": False, "error": str(explain(exc))}
    ms = (time.monotonic() - started) * 1000
    return {"name": name, "where": where, "ok": True, "ms": ms}
