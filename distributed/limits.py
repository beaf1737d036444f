"""``Limits``: how large (as JSON) inputs, step results, execution state and tasks may be.

Every value Flowloom keeps travels as JSON: inputs in the execution record, a step's output and
state updates in its step record (one Redis value each), the whole state in every state read,
a task on the broker. Without a bound one step returning 20 MB becomes a 20 MB Redis value read
by every later step. The defaults fit Kafka's default 1 MB message and keep store values small:

==================  ===========  ==========================================================
limit               default      checked
==================  ===========  ==========================================================
max_inputs_bytes    512 KiB      at submission (``execute_async``): ``InputsTooLarge``,
                                 nothing stored
max_output_bytes    512 KiB      right after a step runs, its output and its state updates
                                 (each): the step fails, not retried, and so does the
                                 execution, naming the step, the size and the limit; a
                                 signal's payload (a wait's output) when it is sent
max_state_bytes     1 MiB        right after a step runs, the state it leaves (inputs plus
                                 every state update so far): as above
max_task_bytes      64 KiB       a queue message: a larger one is dead-lettered undecoded
==================  ===========  ==========================================================

``Settings`` carries them (``FLOWLOOM_MAX_*_BYTES``; ``Settings.limits``); code passes
``Limits(...)`` to ``EngineConfig(limits=...)``, ``StepExecutor(engine, limits=...)`` and
``MQTaskQueue(..., limits=...)``. Sizes are bytes of compact UTF-8 JSON, as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from orchestration import NodeResult, apply_updates

from .errors import InputsTooLarge, LimitExceeded, StepResultTooLarge, format_size

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_inputs",
    "check_signal",
    "json_size",
    "result_too_large",
]

KiB = 1024
MiB = 1024 * KiB


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class Limits:
    """Size limits in bytes of compact JSON (see the module doc); validated when built."""

    max_inputs_bytes: int = Field(default=512 * KiB, ge=1)
    max_output_bytes: int = Field(default=512 * KiB, ge=1)
    max_state_bytes: int = Field(default=1 * MiB, ge=1)
    max_task_bytes: int = Field(default=64 * KiB, ge=1024)


DEFAULT_LIMITS = Limits()


def json_size(value: Any) -> int | None:
    """Bytes of ``value`` as compact JSON (as the store keeps it); None when it is not JSON
    (the caller's own checks report that)."""
    try:
        return len(pydantic_core.to_json(value))
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        return None


def _setting(name: str) -> str:
    return f"{name} / FLOWLOOM_{name.upper()}"


def check_inputs(limits: Limits, workflow_id: str, inputs: Mapping[str, Any]) -> None:
    """Raise ``InputsTooLarge`` when ``inputs`` are over ``limits.max_inputs_bytes``."""
    size = json_size(dict(inputs))
    if size is not None and size > limits.max_inputs_bytes:
        setting = _setting("max_inputs_bytes")
        raise InputsTooLarge(workflow_id, size, limits.max_inputs_bytes, setting)


def check_signal(limits: Limits, event: str, payload: Any) -> None:
    """Raise ``LimitExceeded`` when a signal's ``payload`` (its wait step's output) is over
    ``limits.max_output_bytes``."""
    size = json_size(payload)
    limit = limits.max_output_bytes
    if size is not None and size > limit:
        raise LimitExceeded(
            f"payload of signal {event!r} is {format_size(size)} as JSON, over the limit of "
            f"{format_size(limit)} set by {_setting('max_output_bytes')}",
            size=size,
            limit=limit,
            setting=_setting("max_output_bytes"),
        )


def result_too_large(
    limits: Limits, step_id: str, result: NodeResult, state: Mapping[str, Any]
) -> StepResultTooLarge | None:
    """The error to fail step ``step_id`` with when its ``result`` -- its output, its state
    updates, or the state it leaves (``state`` is what it ran with) -- is over a limit."""
    checks: tuple[tuple[str, Any, int, str], ...] = (
        ("returned an output of", result.output, limits.max_output_bytes, "max_output_bytes"),
        (
            "returned state updates of",
            dict(result.state_updates),
            limits.max_output_bytes,
            "max_output_bytes",
        ),
    )
    for what, value, limit, name in checks:
        size = json_size(value)
        if size is not None and size > limit:
            return StepResultTooLarge(step_id, what, size, limit, _setting(name))
    if not result.state_updates:
        return None
    size = json_size(apply_updates(state, step_id, result))
    if size is not None and size > limits.max_state_bytes:
        what = "would leave an execution state of"
        setting = _setting("max_state_bytes")
        return StepResultTooLarge(step_id, what, size, limits.max_state_bytes, setting)
    return None
