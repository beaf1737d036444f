"""``python -m benchmarks``: Flowloom in every mode and Celery side by side, in one run.

Usage: python -m benchmarks [--quick] [--rounds 3] [--shapes chain-10,diamond,fanout-50]
       [--modes embedded,cluster-1,cluster-2,cluster-4] [--celery-pools prefork-2,threads-8]
       [--no-celery] [--load-steps N] [--json FILE] [--redis-url URL] [--kafka HOST:PORT]
       [--celery-url URL]

Each round runs every mode once, in an order rotated from round to round (interleaved, so a
drift of the shared machine spreads over all of them); every mode starts its own worker
processes and measures every shape (see ``flowloom_run``, ``celery_run`` and ``measure.Plan``).
The tables give the medians over the rounds. Exit code 0, or 1 when a cell failed in every round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

from .figures import Cell, detail_table, side_by_side_table, summarise
from .flowloom_run import cluster, embedded, measure_shape
from .measure import QUICK, Figures, Plan
from .workloads import SHAPES, Shape, shape

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODES = "embedded,cluster-1,cluster-2,cluster-4"
CELERY_POOLS = "prefork-2,threads-8"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small batches, one round (seconds)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, --quick 1)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    parser.add_argument("--modes", default=DEFAULT_MODES, help="embedded, cluster-N (N processes)")
    parser.add_argument("--celery-pools", default=CELERY_POOLS, help="prefork-2, threads-8")
    parser.add_argument("--no-celery", action="store_true", help="Flowloom only")
    parser.add_argument("--load-steps", type=int, help="steps of the load batch (default 800)")
    parser.add_argument("--json", metavar="FILE", help="also write every round's figures there")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument(
        "--celery-url", default="redis://127.0.0.1:6379/15", help="an empty Redis db"
    )
    args = parser.parse_args(argv)
    args.shapes = [shape(name) for name in _split(args.shapes)]
    args.modes = _split(args.modes)
    for mode in args.modes:
        if mode != "embedded" and not (mode.startswith("cluster-") and mode[8:].isdigit()):
            parser.error(f"unknown mode {mode!r}: embedded or cluster-N")
    if not args.no_celery:
        from .celery_run import POOLS

        for pool in _split(args.celery_pools):
            if pool not in POOLS:
                parser.error(f"unknown Celery pool {pool!r}: one of {', '.join(POOLS)}")
        args.modes += [f"celery-{pool}" for pool in _split(args.celery_pools)]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.plan = QUICK if args.quick else Plan()
    if args.load_steps is not None:
        if args.load_steps <= 0:
            parser.error("--load-steps must be positive")
        args.plan = replace(args.plan, load_steps=args.load_steps)
    return args


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def _flowloom_session(mode: str, args: argparse.Namespace) -> dict[str, Figures]:
    shapes: list[Shape] = args.shapes
    if mode == "embedded":
        session = embedded(shapes)
    else:
        session = cluster(shapes, int(mode[8:]), args.redis_url, args.kafka)
    found: dict[str, Figures] = {}
    async with session as target:
        for item in shapes:
            found[item.name] = await _guarded(measure_shape(target, item, args.plan))
    return found


async def _guarded(measuring: object) -> Figures:
    try:
        return await measuring  # type: ignore[misc, no-any-return]
    except Exception as exc:
        return Figures(error=f"{type(exc).__name__}: {exc}")


def _celery_session(pool: str, args: argparse.Namespace) -> dict[str, Figures]:
    from .celery_run import celery_worker, measure_celery

    found: dict[str, Figures] = {}
    with celery_worker(pool, args.celery_url) as target:
        for item in args.shapes:
            try:
                found[item.name] = measure_celery(target, item, args.plan)
            except Exception as exc:
                found[item.name] = Figures(error=f"{type(exc).__name__}: {exc}")
    return found


def run_session(mode: str, args: argparse.Namespace) -> dict[str, Figures]:
    """Every shape in one mode; a mode that cannot start fails all its cells."""
    try:
        if mode.startswith("celery-"):
            return _celery_session(mode[7:], args)
        return asyncio.run(_flowloom_session(mode, args))
    except Exception as exc:
        failed = Figures(error=f"{type(exc).__name__}: {exc}")
        return {item.name: failed for item in args.shapes}


def save(path: str, results: dict[tuple[str, str], list[Figures]]) -> None:
    """Every round's raw figures, to compare runs later: [{shape, mode, rounds: [...]}]."""
    cells = [
        {"shape": shape_name, "mode": mode, "rounds": [asdict(f) for f in runs]}
        for (shape_name, mode), runs in results.items()
    ]
    Path(path).write_text(json.dumps(cells, indent=1) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> list[Cell]:
    results: dict[tuple[str, str], list[Figures]] = defaultdict(list)
    for number in range(args.rounds):
        shift = number % len(args.modes)
        for mode in args.modes[shift:] + args.modes[:shift]:
            started = time.monotonic()
            for name, figures in run_session(mode, args).items():
                results[(name, mode)].append(figures)
            took = time.monotonic() - started
            print(
                f"round {number + 1}/{args.rounds}: {mode} {took:.1f}s", file=sys.stderr, flush=True
            )
    if args.json:
        save(args.json, results)
    return [summarise(s.name, m, results[(s.name, m)]) for s in args.shapes for m in args.modes]


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "?"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def header(args: argparse.Namespace) -> str:
    changed = _output(["git", "diff", "--name-only", "HEAD"]).splitlines()
    outside = [path for path in changed if not path.startswith("benchmarks/")]
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _output(["lscpu"]).splitlines()
            if ln.startswith("Model name")
        ),
        "?",
    )
    plan: Plan = args.plan
    return "\n".join(
        [
            f"commit {_output(['git', 'rev-parse', 'HEAD'])}"
            + (f" + uncommitted changes to {', '.join(outside)}" if outside else ""),
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs ({cpu}); "
            f"Python {platform.python_version()}; load average {_load()} (at the end)",
            f"{args.rounds} round(s), medians; load batch ~{plan.load_steps} steps, "
            f"{plan.singles} single executions, {plan.half_seconds:g} s at half of peak, "
            f"{plan.count_steps} steps counted under MONITOR",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    celery = any(m.startswith("celery-") for m in args.modes)
    if celery:
        from .celery_run import check_empty

        check_empty(args.celery_url)
    try:
        cells = run(args)
    finally:
        if celery:
            from .celery_run import clear

            clear(args.celery_url)
    print(header(args) + "\n")
    print("## Side by side (steps/s under load; p50 of one execution alone; ratio to Celery)\n")
    print(side_by_side_table(cells, [s.name for s in args.shapes], args.modes) + "\n")
    print("## Every cell\n")
    print(detail_table(cells))
    return 1 if any(c.rounds == 0 for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
