"""The hypothesis harness every ``test_fuzz_*`` file uses (``benchmarks/fuzz.py`` drives their
``TARGETS`` through ``run_target`` with many more examples)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

__all__ = ["IN_CI", "Target", "fuzz_settings", "run_target", "stateless"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


class Target(NamedTuple):
    """A fuzz target: each value of ``strategy`` goes to the check ``session()`` yields, which
    returns the outcome's name (counted by ``benchmarks/fuzz.py``) or fails the property."""

    name: str
    strategy: st.SearchStrategy[Any]
    session: Callable[[], AbstractContextManager[Callable[[Any], str]]]
    examples: int  # in the test suite
    deadline_ms: int | None = 2000


def fuzz_settings(examples: int, deadline_ms: int | None, derandomize: bool = IN_CI) -> settings:
    return settings(
        max_examples=examples,
        deadline=None if deadline_ms is None else timedelta(milliseconds=deadline_ms),
        database=None,
        derandomize=derandomize,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def run_target(target: Target, examples: int | None = None, **overrides: Any) -> None:
    """Run ``target`` under hypothesis (``examples`` and settings ``overrides`` for long runs)."""
    chosen = fuzz_settings(examples or target.examples, target.deadline_ms)
    with target.session() as check:

        @settings(chosen, **overrides)
        @given(target.strategy)
        def property_holds(value: Any) -> None:
            check(value)

        property_holds()


def stateless(check: Callable[[Any], str]) -> Callable[[], AbstractContextManager[Any]]:
    @contextmanager
    def session() -> Iterator[Callable[[Any], str]]:
        yield check

    return session
