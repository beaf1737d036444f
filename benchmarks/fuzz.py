"""``python -m benchmarks.fuzz``: the fuzz suite's properties with many more examples.

Usage: python -m benchmarks.fuzz [--examples 5000] [--distributed-examples N]
       [--target NAME ...] [--derandomize] [--deadline-ms MS] [--no-shrink] [--list]

Runs the ``TARGETS`` of the four fuzz test files -- blueprints (documents, files, mutated
reference use cases, generated DAGs), conditions, task payloads and inputs on the embedded
runtime, store and broker URLs -- under hypothesis with ``--examples`` examples each (the test
suite runs a few hundred at most). Targets that run executions on the embedded runtime
(``distributed-*``) get ``--distributed-examples`` (default a tenth of ``--examples``, at least
25): each costs milliseconds. Every target is random (a new seed per run) unless
``--derandomize``; there is no example database, so a failure prints its example and the
``@reproduce_failure`` blob to paste into the test.

Prints one line per target: examples run, seconds, and the count of each outcome (``refused``,
``ran: completed``, ...) -- the check of each target names its outcome -- then the failures.
Exit code 0, or 1 when a property failed. Needs no service (embedded backends only).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import Phase

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
FILES = [
    TESTS / "orchestration" / "test_fuzz_blueprints.py",
    TESTS / "orchestration" / "test_fuzz_conditions.py",
    TESTS / "distributed" / "test_fuzz_inputs.py",
    TESTS / "test_fuzz_urls.py",
]


def load(path: Path) -> ModuleType:
    """Import a test file as a module (its folder on ``sys.path``, as pytest puts it)."""
    for folder in (ROOT, TESTS, path.parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    name = f"flowloom_fuzz_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def counting(
    session: Callable[[], AbstractContextManager[Callable[[Any], str]]], outcomes: Counter[str]
) -> Callable[[], AbstractContextManager[Callable[[Any], str]]]:
    """``session`` whose check counts each example's outcome (``FAILED`` when it raised)."""

    @contextmanager
    def counted() -> Iterator[Callable[[Any], str]]:
        with session() as check:

            def check_and_count(value: Any) -> str:
                try:
                    outcome = check(value)
                except BaseException:
                    outcomes["FAILED"] += 1
                    raise
                outcomes[outcome] += 1
                return outcome

            yield check_and_count

    return counted


def describe(error: BaseException) -> str:
    """The failure as hypothesis reports it: for each distinct failure, where it was raised
    (the last frames), the exception and the falsifying example (its notes)."""
    parts = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
    texts = []
    for part in parts:
        frames = "".join(traceback.format_tb(part.__traceback__, limit=-3))
        text = "".join(traceback.format_exception_only(type(part), part)).strip()
        notes = "\n".join(getattr(part, "__notes__", []))
        texts.append(f"{frames}{text}\n{notes}".strip())
    return "\n\n".join(texts)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--examples", type=int, default=5000, help="per target (default 5000)")
    parser.add_argument(
        "--distributed-examples",
        type=int,
        help="per target running executions (default examples/10, at least 25)",
    )
    parser.add_argument(
        "--target", action="append", default=[], help="run targets whose name contains this"
    )
    parser.add_argument("--derandomize", action="store_true", help="the same examples every run")
    parser.add_argument(
        "--deadline-ms",
        type=int,
        help="per-example deadline (default: none, each target's own timeouts still catch a hang)",
    )
    parser.add_argument(
        "--no-shrink",
        action="store_true",
        help="report a failing example as found (shrinking a large one can take minutes)",
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    targets = [(module, target) for module in map(load, FILES) for target in module.TARGETS]
    if args.target:
        targets = [(m, t) for m, t in targets if any(part in t.name for part in args.target)]
    if args.list:
        for module, target in targets:
            print(f"{target.name:<28} {Path(module.__file__ or '').relative_to(ROOT)}")
        return 0
    spread = args.distributed_examples or max(25, args.examples // 10)
    deadline = None if args.deadline_ms is None else timedelta(milliseconds=args.deadline_ms)
    failures: list[tuple[str, str]] = []
    print(f"{'target':<28} {'examples':>8} {'seconds':>8}  outcomes")
    started_all = time.monotonic()
    for module, target in targets:
        examples = spread if target.name.startswith("distributed-") else args.examples
        outcomes: Counter[str] = Counter()
        counted = target._replace(session=counting(target.session, outcomes))
        started = time.monotonic()
        overrides: dict[str, Any] = {"derandomize": args.derandomize, "deadline": deadline}
        if args.no_shrink:
            overrides["phases"] = [Phase.explicit, Phase.generate, Phase.target]
        try:
            module.run_target(counted, examples, **overrides)
        except Exception as exc:
            failures.append((target.name, describe(exc)))
        seconds = time.monotonic() - started
        shown = ", ".join(f"{name} {n}" for name, n in outcomes.most_common())
        print(f"{target.name:<28} {sum(outcomes.values()):>8} {seconds:>8.1f}  {shown}")
        sys.stdout.flush()
    print(f"\n{len(targets)} targets in {time.monotonic() - started_all:.0f} s; ", end="")
    print(f"{len(failures)} failed" if failures else "every property held")
    for name, text in failures:
        print(f"\n=== {name} ===\n{text}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
