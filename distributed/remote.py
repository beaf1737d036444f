"""Steps of a local workflow that run on the worker pool: ``RemoteStep`` and
``DistributedParallelStep``.

Both are ``FunctionStep``\\ s, so they compile like any code step; their function submits
executions to a ``DistributedEngine`` and waits for them::

    local = Engine()
    runtime = Runtime.from_urls(local, store_url=..., broker_url=...)
    local.register_workflow(
        Workflow("report")
        .add_step(RemoteStep("crunch", runtime.engine, "number-crunching", output_key="totals"))
        .add_step(DistributedParallelStep(
            "review", runtime.engine, {"pros": optimist, "cons": critic},
            prompt="Review: {{totals}}",
        ))
    )

Semantics:

- **Idempotent submission.** Remote execution ids derive from the local step:
  ``{execution_id}.{node_id}#{n}`` (``.{key}`` before ``#`` for each agent of a parallel step).
  A step that runs again -- a redelivery after its worker died, a duplicate -- re-attaches to
  the remote execution that is still running or has completed, instead of starting a second
  one. A remote execution that ended otherwise (failed, cancelled, timed out) is never reused:
  a retry of the local step starts the next ``n``.
- **Failure.** A remote execution that does not complete fails the step with ``SubflowFailed``
  carrying its status and root cause (failed step and error), so the local retry policy decides.
- **Cancellation.** Cancelling the local step (the local execution was cancelled or failed, the
  step timed out, its worker stopped) cancels the remote executions it waits for; cancellation
  then reaches the workers running them. A worker that *dies* cancels nothing, and the re-run
  step re-attaches.
- **Timeout.** ``timeout`` is each remote execution's deadline (``ExecutionOptions.timeout``):
  past it the remote execution is ``timed_out`` (set by the recovery sweep, or by the waiting
  step itself if no pool notices first) and the step fails.
- **Slots.** The step holds its local slot (a worker slot, when the local workflow itself runs
  on the pool) while it waits. To run a sub-workflow from a distributed workflow without holding
  a slot, use a ``subflow`` node.

Workers and clients import the same module: ``DistributedParallelStep`` registers one small
workflow per agent (id ``{prefix}.{key}``, one ``SequentialStep`` named ``key``) on the local
engine of ``engine`` when it is constructed, so every process that builds the step knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from orchestration import (
    JSON,
    Agent,
    BlueprintValidationError,
    Engine,
    FunctionStep,
    Graph,
    NodeResult,
    NotJSONSerializable,
    Problem,
    SequentialStep,
    StepInput,
    Workflow,
    current_context,
    render_template,
)
from orchestration.jsonvalue import to_json_value
from orchestration.steps import call

from .engine import DistributedEngine
from .errors import ExecutionExists, ExecutionNotFound, SubflowFailed, WaitTimeout
from .models import ExecutionOptions, ExecutionSnapshot
from .timebox import cancelling

__all__ = ["DistributedParallelStep", "RemoteStep"]

log = logging.getLogger(__name__)

PROMPT_KEY = "prompt"
"""The input key that carries the prompt into each agent's execution."""


class RemoteStep(FunctionStep):
    """Run workflow ``workflow_id`` on the pool of ``engine`` as one step of a local workflow.

    ``inputs(state)`` (sync or async) gives the remote execution's inputs; by default it gets
    everything the step sees (state and completed steps' outputs). The step's output is the
    remote execution's final outputs: the value itself when there is exactly one, else the
    dict. ``output_key`` also stores it in the state. ``timeout`` is the remote execution's
    deadline in seconds. Other keyword options (``retry``, ``depends_on``, ``join``,
    ``fallback``) are those of every step; see the module docstring for the semantics.
    """

    def __init__(
        self,
        name: str,
        engine: DistributedEngine,
        workflow_id: str,
        *,
        inputs: Callable[[StepInput], Mapping[str, JSON] | Awaitable[Mapping[str, JSON]]]
        | None = None,
        output_key: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, self._run, output_key, **options)
        self.engine = engine
        self.workflow_id = workflow_id
        self.inputs = inputs
        self.remote_timeout = timeout

    def node_params(self) -> dict[str, JSON]:
        params: dict[str, JSON] = {"remoteWorkflow": self.workflow_id}
        return params | ({"outputKey": self.output_key} if self.output_key else {})

    async def _run(self, data: StepInput) -> JSON:
        base = _running_step_id(self.name)
        raw = dict(data) if self.inputs is None else await call(self.inputs, data)
        try:
            inputs = to_json_value(dict(raw))
        except (TypeError, ValueError) as exc:
            raise NotJSONSerializable(self.name, "remote input", str(exc)) from None
        snapshot = await run_remote(
            self.engine,
            self.workflow_id,
            inputs,
            base,
            timeout=self.remote_timeout,
            what=f"remote step {self.name!r}",
        )
        outputs = snapshot.outputs
        return next(iter(outputs.values())) if len(outputs) == 1 else dict(outputs)

    def __repr__(self) -> str:
        return f"RemoteStep(name={self.name!r}, workflow_id={self.workflow_id!r})"


class DistributedParallelStep(FunctionStep):
    """Ask every agent of ``agents`` the same prompt, each in its own execution on the pool.

    ``prompt`` is a template over the state (``"Review {{draft}}"``) or a callable of the state
    (sync or async). Each reply lands in the state under its key in ``agents``; the step's
    output is the dict of replies. The first agent to fail fails the step (naming the agent)
    and cancels the others. ``timeout`` is the deadline of each agent's execution.

    The original framework's shape is accepted too: ``agents`` as a list, with ``output_keys``
    (one state key per agent, in order) and ``input_fn`` (the prompt as a callable of the state)::

        DistributedParallelStep("review", engine, [optimist, critic],
                                input_fn=lambda s: f"Review {s['draft']}",
                                output_keys=["pros", "cons"])

    Constructing the step registers workflow ``{prefix}.{key}`` for each agent on
    ``engine.local_engine`` (``prefix`` defaults to the step's name). Registering the same
    definition again is harmless; a different definition under the same id raises
    ``BlueprintValidationError`` -- give one of the steps another ``prefix``.
    """

    def __init__(
        self,
        name: str,
        engine: DistributedEngine,
        agents: Mapping[str, Agent] | Sequence[Agent],
        *,
        prompt: str | Callable[[StepInput], str | Awaitable[str]] | None = None,
        input_fn: Callable[[StepInput], str | Awaitable[str]] | None = None,
        output_keys: Sequence[str] | None = None,
        timeout: float | None = None,
        prefix: str | None = None,
        **options: Any,
    ) -> None:
        if not agents:
            raise ValueError(f"DistributedParallelStep {name!r} needs at least one agent")
        question = prompt if prompt is not None else input_fn
        if question is None:
            raise ValueError(f"DistributedParallelStep {name!r} needs a prompt (or input_fn)")
        super().__init__(name, self._run, None, **options)
        self.engine = engine
        self.agents = _keyed_agents(name, agents, output_keys)
        self.prompt = question
        self.remote_timeout = timeout
        self.prefix = prefix or name
        for key, agent in self.agents.items():
            register_agent_workflow(engine.local_engine, self.agent_workflow_id(key), key, agent)

    def agent_workflow_id(self, key: str) -> str:
        """Id of the workflow that runs agent ``key``."""
        return f"{self.prefix}.{key}"

    def node_params(self) -> dict[str, JSON]:
        return {"agents": {key: agent.name for key, agent in self.agents.items()}}

    async def _run(self, data: StepInput) -> NodeResult:
        base = _running_step_id(self.name)
        if isinstance(self.prompt, str):
            prompt = render_template(self.prompt, {}, data, {})
        else:
            prompt = str(await call(self.prompt, data))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    key: group.create_task(self._ask(key, prompt, base)) for key in self.agents
                }
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        replies = {key: task.result() for key, task in tasks.items()}
        return NodeResult(output=replies, state_updates=replies)

    async def _ask(self, key: str, prompt: str, base: str) -> JSON:
        what = f"agent {key!r} ({self.agents[key].name}) of step {self.name!r}"
        try:
            snapshot = await run_remote(
                self.engine,
                self.agent_workflow_id(key),
                {PROMPT_KEY: prompt},
                f"{base}.{key}",
                timeout=self.remote_timeout,
                what=what,
            )
        except Exception as exc:
            if not isinstance(exc, SubflowFailed):
                exc.add_note(f"while running {what}")
            raise
        return snapshot.outputs.get(key)

    def __repr__(self) -> str:
        return f"DistributedParallelStep(name={self.name!r}, agents={list(self.agents)!r})"


def register_agent_workflow(local: Engine, workflow_id: str, key: str, agent: Agent) -> Graph:
    """Register (idempotently) the one-step workflow that asks ``agent`` the input prompt."""
    workflow = Workflow(workflow_id, description=f"agent {agent.name} of a parallel step")
    workflow.add_step(SequentialStep(key, agent, input_fn=_prompt_of, output_key=key))
    if workflow_id in local.workflows():
        compiled = workflow.compile()
        wanted = Graph(workflow_id, compiled.nodes, compiled.edges).version
        if local.graph(workflow_id).version != wanted:
            problem = Problem("id", "already registered with a different definition")
            raise BlueprintValidationError(workflow_id, [problem])
    return local.register_workflow(workflow)


def _prompt_of(data: StepInput) -> str:
    return str(data.get(PROMPT_KEY) or "")


# -- one remote execution -------------------------------------------------------------------


async def run_remote(
    engine: DistributedEngine,
    workflow_id: str,
    inputs: Mapping[str, JSON],
    base_id: str,
    *,
    timeout: float | None,
    what: str,
) -> ExecutionSnapshot:
    """Attach to (or submit) the remote execution for ``base_id`` and wait for it.

    Returns the completed snapshot; raises ``SubflowFailed`` naming ``what`` and the root cause
    when it ends otherwise. Cancelling the caller cancels the remote execution.
    """
    execution_id, submitted = await _pick_execution(engine, base_id)
    try:  # a cancel from here on cancels this execution, even mid-submit
        if not submitted:
            with contextlib.suppress(ExecutionExists):  # a duplicate of this step submitted it
                await engine.execute_async(
                    workflow_id,
                    inputs,
                    ExecutionOptions(timeout=timeout),
                    execution_id=execution_id,
                )
        snapshot = await _wait(engine, execution_id)
    except asyncio.CancelledError:
        await asyncio.shield(_cancel(engine, execution_id))
        raise
    except Exception as exc:
        if cancelling():  # a client library turned our cancellation into an error
            await asyncio.shield(_cancel(engine, execution_id))
            raise asyncio.CancelledError from exc
        raise
    if snapshot.status != "completed":
        cause = f"{snapshot.failed_step}: {snapshot.error}" if snapshot.failed_step else None
        raise SubflowFailed(
            f"{what}: remote execution {execution_id} of {workflow_id!r} ended "
            f"{snapshot.status}: {cause or snapshot.error}"
        )
    return snapshot


async def _pick_execution(engine: DistributedEngine, base_id: str) -> tuple[str, bool]:
    """The first ``base_id#n`` that is running or completed (True: attach to it), else the first
    free one (False: submit it). Executions that ended otherwise belong to earlier, failed
    attempts and are never reused."""
    persistence = engine.persistence
    for n in itertools.count(1):
        execution_id = f"{base_id}#{n}"
        if await persistence.record(execution_id) is None:
            return execution_id, False
        final = await persistence.final(execution_id)
        if final is None or final.status == "completed":
            log.info("re-attaching to remote execution %s", execution_id)
            return execution_id, True
    raise AssertionError("unreachable")  # pragma: no cover


async def _wait(engine: DistributedEngine, execution_id: str) -> ExecutionSnapshot:
    """Wait for the final status; at the deadline, time the execution out ourselves (the
    first writer wins, so a recovery sweep that got there first keeps its word)."""
    record = await engine.persistence.record(execution_id)
    deadline = record.deadline if record is not None else None
    remaining = None if deadline is None else max(deadline - time.time(), 0.0)
    try:
        return await engine.wait(execution_id, timeout=remaining)
    except WaitTimeout:
        await engine.time_out(execution_id)
        return await engine.get_execution_status(execution_id)


async def _cancel(engine: DistributedEngine, execution_id: str) -> None:
    log.info("local step cancelled; cancelling remote execution %s", execution_id)
    try:
        await engine.cancel(execution_id)
    except ExecutionNotFound:
        pass
    except Exception:
        log.exception("could not cancel remote execution %s", execution_id)


# -- which step is running ------------------------------------------------------------------


def _running_step_id(step_name: str) -> str:
    """``{execution_id}.{node_id}`` of the node attempt calling this step function; random (with
    a warning) when called outside a node attempt, so re-runs are then not recognised."""
    ctx = current_context.get()
    if ctx is not None:
        return f"{ctx.execution_id}.{ctx.node.id}"
    log.warning("step %r is not running as a node; its remote executions get random ids", step_name)
    return f"{uuid.uuid4().hex}.{step_name}"


def _keyed_agents(
    name: str, agents: Mapping[str, Agent] | Sequence[Agent], output_keys: Sequence[str] | None
) -> dict[str, Agent]:
    """``{state key: agent}`` from a mapping, or from a list of agents and their output keys."""
    if isinstance(agents, Mapping):
        if output_keys is not None:
            raise ValueError(
                f"DistributedParallelStep {name!r}: output_keys needs a list of agents"
            )
        return dict(agents)
    if output_keys is None or len(output_keys) != len(agents):
        raise ValueError(
            f"DistributedParallelStep {name!r}: give one output key per agent "
            f"({len(agents)} agents, {0 if output_keys is None else len(output_keys)} keys)"
        )
    if len(set(output_keys)) != len(output_keys):
        raise ValueError(f"DistributedParallelStep {name!r}: output keys must be distinct")
    return dict(zip(output_keys, agents, strict=True))
