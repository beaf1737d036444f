"""``python -m benchmarks.opcodes``: the Python work of an embedded step, counted, not timed.

Usage: python -m benchmarks.opcodes [--steps 2000] [--shape chain-10] [--in-flight 8] [--top 30]

Runs ``benchmarks.rss``'s embedded loop (no-op steps of ``--shape``) under a ``sys.settrace``
tracer that counts the bytecode instructions each function executes (``f_trace_opcodes``) and
the calls made to it, and prints the totals per step and the ``--top`` functions. The counts do
not move with a shared machine's noise, as times do, so two trees can be compared run against
run (a change that saves 1% shows); the interpreter's work is about three quarters of a step's
instructions, the rest is C (LevelDB, pydantic-core, the JSON encoders), which this does not
see. Traced, a run is about 60 times slower, so timer-driven work (the event log's drains,
heartbeats) comes out larger per step than in a plain run: compare trees, not absolute figures.
A coroutine's resumption counts as a call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from . import rss

__all__ = ["Count", "main"]

_ROOT = str(Path(__file__).resolve().parents[1]) + "/"


class Count:
    """Opcodes and calls per function (code object) while ``tracing`` is on."""

    def __init__(self) -> None:
        self.opcodes: Counter[CodeType] = Counter()
        self.calls: Counter[CodeType] = Counter()

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        code = frame.f_code
        self.calls[code] += 1
        frame.f_trace_opcodes = True
        opcodes = self.opcodes

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                opcodes[code] += 1
            return local

        return local


def _name(code: CodeType) -> str:
    where = code.co_filename.removeprefix(_ROOT)
    if "site-packages/" in where:
        where = where.split("site-packages/", 1)[1]
    elif "/python3." in where:  # the standard library
        where = where.split("/python3.", 1)[1].split("/", 1)[-1]
    return f"{where}:{code.co_firstlineno}:{code.co_qualname}"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.opcodes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--shape", default="chain-10")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    return parser.parse_args(argv)


async def _counted(args: argparse.Namespace, count: Count) -> int:
    loop_args = ["--steps", str(args.steps), "--every", str(10 * args.steps)]
    loop_args += ["--shape", args.shape, "--in-flight", str(args.in_flight)]
    sys.settrace(count.trace)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the loop's own RSS row
            sampler = await rss.run(rss.parse(loop_args))
    finally:
        sys.settrace(None)
    return sampler.done


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    count = Count()
    steps = asyncio.run(_counted(args, count))
    opcodes, calls = sum(count.opcodes.values()), sum(count.calls.values())
    print(f"{args.shape}, {steps:,} steps, {args.in_flight} executions in flight")
    print(f"opcodes per step: {opcodes / steps:,.0f}; calls per step: {calls / steps:,.1f}\n")
    print("| opcodes/step | calls/step | function |\n| ---: | ---: | --- |")
    for code, n in count.opcodes.most_common(args.top):
        print(f"| {n / steps:,.1f} | {count.calls[code] / steps:,.2f} | {_name(code)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
