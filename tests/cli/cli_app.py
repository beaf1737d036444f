"""The APP (``module:object``) the CLI tests start workers with.

``usecases()``: the four reference use cases (blueprints). ``engine``: those, plus code
workflows for the operations tests, whose steps append ``start/end <step> <pid>`` to the file
named by the ``log`` input, so a test sees which process ran what:

- ``slow``: ``first`` (sleeps ``delay`` seconds), then ``second``;
- ``flaky``: ``fetch``, then ``load``, which fails until the file named by ``flag`` exists;
- ``approval``: ``draft``, then ``review`` waits for the ``review`` signal, then ``publish``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from orchestration import Engine, FunctionStep, NonRetryableError, WaitStep, Workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
USE_CASES = ("blog-post", "job-application", "customer-review", "content-moderation")


def usecases() -> Engine:
    """An engine holding the blueprints of the four reference use cases."""
    local = Engine()
    for name in USE_CASES:
        local.load_blueprints(EXAMPLES / name / "blueprints")
    return local


def _log(state: Any, line: str) -> None:
    path = state.get("log")
    if isinstance(path, str):
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{line} {os.getpid()}\n")


def _step(name: str, delay_key: str | None = None) -> Any:
    async def run(state: Any) -> str:
        _log(state, f"start {name}")
        if delay_key:
            await asyncio.sleep(float(state.get(delay_key, 0)))
        _log(state, f"end {name}")
        return f"{name} done"

    run.__qualname__ = name
    return run


def _load(state: Any) -> str:
    if not Path(str(state.get("flag", ""))).exists():
        raise NonRetryableError("the warehouse is down")
    return "loaded"


def build() -> Engine:
    """The four use cases and the code workflows of the operations tests."""
    local = usecases()
    local.register_workflow(
        Workflow("slow", "Slow")
        .add_step(FunctionStep("first", _step("first", "delay"), output_key="one"))
        .add_step(FunctionStep("second", _step("second"), output_key="two"))
    )
    local.register_workflow(
        Workflow("flaky", "Flaky")
        .add_step(FunctionStep("fetch", _step("fetch"), output_key="rows"))
        .add_step(FunctionStep("load", _load, output_key="result"))
    )
    local.register_workflow(
        Workflow("approval", "Approval")
        .add_step(FunctionStep("draft", _step("draft"), output_key="text"))
        .add_step(WaitStep("review", "review", output_key="decision"))
        .add_step(FunctionStep("publish", _step("publish"), output_key="published"))
    )
    return local


engine = build()
