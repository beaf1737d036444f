"""Steps of code workflows (the Go-style API) and the node types that run them.

Every step has a ``name`` (its node id) and keyword options: ``retry`` (``RetryPolicy``),
``timeout`` (seconds), ``depends_on`` (names of earlier steps; default: the previous step,
``[]``: none), ``join`` (``JoinPolicy``) and, for agent/function steps, ``fallback`` (a step
run only when this one fails). Callables live in the node type instances the workflow
registers with the engine; the graph itself holds none.

Functions and ``input_fn`` receive a read-only ``StepInput``: the state, plus the outputs of
completed steps under their names (the state wins when a key is in both).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestration.agents import Agent
from orchestration.conditions import compile_condition
from orchestration.context import NodeContext, Services
from orchestration.graph import JoinPolicy, Node, RetryPolicy
from orchestration.jsonvalue import JSON
from orchestration.routing import NodeResult

__all__ = [
    "ConditionalStep",
    "FunctionStep",
    "LoopStep",
    "ParallelStep",
    "SequentialStep",
    "Step",
    "StepInput",
    "WaitStep",
]

StepInput = Mapping[str, JSON]
"""What step callables receive: state + completed steps' outputs (read-only)."""

StepFn = Callable[[StepInput], Any]


def step_input(ctx: NodeContext) -> StepInput:
    """The read-only mapping given to step callables."""
    merged = dict(ctx.outputs)
    merged.update(ctx.state)
    return MappingProxyType(merged)


async def call(fn: Callable[[StepInput], Any], data: StepInput) -> Any:
    """Call a sync or async step callable."""
    value = fn(data)
    if inspect.isawaitable(value):
        value = await value
    return value


def _result(value: Any, output_key: str | None) -> NodeResult:
    if isinstance(value, NodeResult):
        if output_key is None:
            return value
        updates = {**value.state_updates, output_key: value.output}
        return NodeResult(value.output, value.action, updates)
    return NodeResult(output=value, state_updates={output_key: value} if output_key else {})


@dataclass(kw_only=True)
class Step:
    """Options shared by every step (see the module docstring)."""

    name: str
    retry: RetryPolicy | None = None
    timeout: float | None = None
    depends_on: Sequence[str] | None = None
    join: JoinPolicy | None = None

    def node_params(self) -> dict[str, JSON]:
        """The JSON ``params`` of this step's node."""
        return {}


@dataclass(kw_only=True)
class SequentialStep(Step):
    """Ask ``agent`` the prompt ``input_fn(state)``; store the reply at ``output_key``."""

    agent: Agent
    input_fn: Callable[[StepInput], str | Awaitable[str]] | None = None
    output_key: str | None = None
    fallback: Step | None = None

    def __init__(
        self,
        name: str,
        agent: Agent,
        input_fn: Callable[[StepInput], str | Awaitable[str]] | None = None,
        output_key: str | None = None,
        **options: Any,
    ) -> None:
        self.fallback = options.pop("fallback", None)
        Step.__init__(self, name=name, **options)
        self.agent, self.input_fn, self.output_key = agent, input_fn, output_key

    def node_params(self) -> dict[str, JSON]:
        params: dict[str, JSON] = {"agent": self.agent.name, "model": self.agent.model}
        return params | ({"outputKey": self.output_key} if self.output_key else {})


@dataclass(kw_only=True)
class FunctionStep(Step):
    """Run ``fn(state)`` (sync or async); store its value at ``output_key``.

    ``fn`` may return a ``NodeResult`` to set an action or several state keys itself.
    """

    fn: StepFn
    output_key: str | None = None
    fallback: Step | None = None

    def __init__(
        self, name: str, fn: StepFn, output_key: str | None = None, **options: Any
    ) -> None:
        self.fallback = options.pop("fallback", None)
        Step.__init__(self, name=name, **options)
        self.fn, self.output_key = fn, output_key

    def node_params(self) -> dict[str, JSON]:
        qualname = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        params: dict[str, JSON] = {"function": f"{self.fn.__module__}.{qualname}"}
        return params | ({"outputKey": self.output_key} if self.output_key else {})


@dataclass(kw_only=True)
class ParallelStep(Step):
    """Run ``steps`` concurrently; the next step waits for all of them (an ``all`` join)."""

    steps: list[Step] = field(default_factory=list)

    def __init__(self, name: str, steps: Sequence[Step], **options: Any) -> None:
        Step.__init__(self, name=name, **options)
        self.steps = list(steps)


@dataclass(kw_only=True)
class ConditionalStep(Step):
    """Run ``if_true`` or ``if_false`` depending on ``condition``.

    ``condition`` is an expression of the condition language over the state (a string) or
    a callable ``condition_fn(state) -> bool`` (sync or async). The untaken branch is
    skipped; the step's output is the boolean.
    """

    condition: str | Callable[[StepInput], Any] = ""
    if_true: Step | None = None
    if_false: Step | None = None

    def __init__(
        self,
        name: str,
        condition: str | Callable[[StepInput], Any] | None = None,
        if_true: Step | None = None,
        if_false: Step | None = None,
        *,
        condition_fn: Callable[[StepInput], Any] | None = None,
        **options: Any,
    ) -> None:
        Step.__init__(self, name=name, **options)
        chosen = condition if condition is not None else condition_fn
        if chosen is None or if_true is None:
            raise TypeError("ConditionalStep needs a condition (or condition_fn) and if_true")
        self.condition, self.if_true, self.if_false = chosen, if_true, if_false
        if isinstance(chosen, str):
            compile_condition(chosen)

    def node_params(self) -> dict[str, JSON]:
        if isinstance(self.condition, str):
            return {"condition": self.condition}
        return {"condition_fn": getattr(self.condition, "__qualname__", "callable")}


@dataclass(kw_only=True)
class WaitStep(Step):
    """Park until signal ``event`` arrives (``engine.signal(id, event, payload, action)``).

    The step's output is the signal's payload (also stored at ``output_key``), its action the
    signal's action. ``timeout`` (seconds) bounds the wait: past it the step completes with
    the ``on_timeout`` action, or fails with ``WaitTimedOut`` when there is none. See
    ``orchestration.waits``.
    """

    event: str = ""
    on_timeout: str | None = None
    output_key: str | None = None

    def __init__(
        self,
        name: str,
        event: str,
        *,
        timeout: float | None = None,
        on_timeout: str | None = None,
        output_key: str | None = None,
        **options: Any,
    ) -> None:
        Step.__init__(self, name=name, **options)
        self.event, self.on_timeout, self.output_key = event, on_timeout, output_key
        self.wait_timeout = timeout

    def node_params(self) -> dict[str, JSON]:
        params: dict[str, JSON] = {"event": self.event}
        if self.wait_timeout is not None:
            params["timeout"] = self.wait_timeout * 1000
        if self.on_timeout is not None:
            params["onTimeout"] = self.on_timeout
        if self.output_key is not None:
            params["outputKey"] = self.output_key
        return params


@dataclass(kw_only=True)
class LoopStep(Step):
    """Run workflow ``body`` once per iteration, again while ``condition`` holds, at most
    ``max_iterations`` times (see ``orchestration.loops``). ``inputs`` feed each iteration
    (``{childKey: source}``); ``outputs`` carry its results into the state (``{stateKey:
    childKey}``), where the next iteration and the condition see them."""

    body: str = ""
    max_iterations: int = 1
    condition: str | None = None
    inputs: dict[str, JSON] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        body: str,
        *,
        max_iterations: int,
        condition: str | None = None,
        inputs: Mapping[str, JSON] | None = None,
        outputs: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        Step.__init__(self, name=name, **options)
        self.body, self.max_iterations, self.condition = body, max_iterations, condition
        self.inputs, self.outputs = dict(inputs or {}), dict(outputs or {})

    def node_params(self) -> dict[str, JSON]:
        params: dict[str, JSON] = {"body": self.body, "maxIterations": self.max_iterations}
        if self.condition is not None:
            params["while"] = self.condition
        if self.inputs:
            params["inputs"] = dict(self.inputs)
        if self.outputs:
            params["outputs"] = dict(self.outputs)
        return params


# -- node types holding the callables ----------------------------------------------------


@dataclass(frozen=True)
class AgentStepType:
    """Runs a ``SequentialStep``."""

    step: SequentialStep

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        data = step_input(ctx)
        if self.step.input_fn is None:
            prompt = json.dumps(dict(ctx.state), ensure_ascii=False)
        else:
            prompt = str(await call(self.step.input_fn, data))
        reply = await self.step.agent.run(prompt, provider=services.provider)
        return _result(reply, self.step.output_key)


@dataclass(frozen=True)
class FunctionStepType:
    """Runs a ``FunctionStep``."""

    step: FunctionStep

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        return _result(await call(self.step.fn, step_input(ctx)), self.step.output_key)


@dataclass(frozen=True)
class ConditionStepType:
    """Runs a ``ConditionalStep``: output = the verdict, action ``"true"``/``"false"``."""

    step: ConditionalStep

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        condition = self.step.condition
        data = step_input(ctx)
        if isinstance(condition, str):
            verdict = compile_condition(condition).evaluate(data)
        else:
            verdict = bool(await call(condition, data))
        return NodeResult(output=verdict, action="true" if verdict else "false")
