"""Code workflows: ``Workflow(id, name, description).add_step(...)``, compiled to a graph.

Steps run in the order added, each after the previous one unless it says ``depends_on``.
A ``ParallelStep`` fans out to its steps and the next step joins them; a
``ConditionalStep`` routes to ``if_true`` or ``if_false`` by edge conditions on its boolean
output (``output == true`` / ``output == false``), and the branch not taken is skipped.
Workers and clients import the same module and register the same workflow, so the
callables never travel: they stay in node types named ``<workflow id>:<step name>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestration.context import NodeType
from orchestration.errors import BlueprintValidationError, Problem
from orchestration.graph import Edge, JoinPolicy, Node, RetryPolicy
from orchestration.loops import LOOP
from orchestration.steps import (
    AgentStepType,
    ConditionalStep,
    ConditionStepType,
    FunctionStep,
    FunctionStepType,
    LoopStep,
    ParallelStep,
    SequentialStep,
    Step,
    WaitStep,
)
from orchestration.waits import WAIT

__all__ = ["CompiledWorkflow", "Workflow"]

Exit = tuple[str, str | None]
"""A way out of a compiled step: (node id, condition on the edge leaving it)."""

TRUE, FALSE = "output == true", "output == false"


@dataclass
class CompiledWorkflow:
    """The graph parts of a workflow plus the node types holding its callables."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    node_types: dict[str, NodeType] = field(default_factory=dict)


class Workflow:
    """A code-defined workflow. ``add_step`` returns the workflow, so calls chain."""

    def __init__(self, id: str, name: str = "", description: str = "") -> None:
        self.id = id
        self.name = name or id
        self.description = description
        self.steps: list[Step] = []

    def add_step(self, step: Step) -> Workflow:
        """Append ``step`` (after the previous step unless it sets ``depends_on``)."""
        self.steps.append(step)
        return self

    def compile(self) -> CompiledWorkflow:
        """Nodes, edges and node types of this workflow (validated by the engine)."""
        compiler = _Compiler(self.id)
        tail: list[Exit] = []
        for step in self.steps:
            tail = compiler.add(step, compiler.predecessors(step, tail))
        return compiler.compiled


class _Compiler:
    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.compiled = CompiledWorkflow()
        self.exits: dict[str, list[Exit]] = {}

    def predecessors(self, step: Step, default: list[Exit]) -> list[Exit]:
        if step.depends_on is None:
            return default
        missing = [name for name in step.depends_on if name not in self.exits]
        if missing:
            problem = Problem(f"steps.{step.name}", f"depends on unknown step(s) {missing}")
            raise BlueprintValidationError(self.workflow_id, [problem])
        return [exit for name in step.depends_on for exit in self.exits[name]]

    def add(self, step: Step, predecessors: Sequence[Exit]) -> list[Exit]:
        if isinstance(step, ParallelStep):
            exits = self._parallel(step, predecessors)
        elif isinstance(step, ConditionalStep):
            exits = self._conditional(step, predecessors)
        else:
            self._link(predecessors, self._node(step))
            exits = [(step.name, None)]
        self.exits[step.name] = exits
        return exits

    def _parallel(self, step: ParallelStep, predecessors: Sequence[Exit]) -> list[Exit]:
        exits: list[Exit] = []
        for branch in step.steps:
            exits += self.add(branch, self.predecessors(branch, list(predecessors)))
        return exits

    def _conditional(self, step: ConditionalStep, predecessors: Sequence[Exit]) -> list[Exit]:
        self._link(predecessors, self._node(step))
        assert step.if_true is not None
        exits = self.add(step.if_true, [(step.name, TRUE)])
        if step.if_false is None:
            return [*exits, (step.name, FALSE)]
        return exits + self.add(step.if_false, [(step.name, FALSE)])

    def _link(self, predecessors: Sequence[Exit], target: str) -> None:
        for source, condition in predecessors:
            self.compiled.edges.append(Edge(source, target, condition=condition))

    def _node(self, step: Step) -> str:
        builtin = isinstance(step, WaitStep | LoopStep)
        type_name = _builtin_type(step) if builtin else f"{self.workflow_id}:{step.name}"
        fallback = getattr(step, "fallback", None)
        if isinstance(fallback, Step):
            self._node(fallback)
        self.compiled.nodes.append(
            Node(
                id=step.name,
                type=type_name,
                params=step.node_params(),
                retry=step.retry or RetryPolicy(),
                timeout=step.timeout,
                fallback=fallback.name if isinstance(fallback, Step) else None,
                join=step.join or JoinPolicy(),
            )
        )
        if not builtin:
            self.compiled.node_types[type_name] = _node_type(step)
        return step.name


def _builtin_type(step: Step) -> str:
    return WAIT if isinstance(step, WaitStep) else LOOP


def _node_type(step: Step) -> NodeType:
    if isinstance(step, SequentialStep):
        return AgentStepType(step)
    if isinstance(step, FunctionStep):
        return FunctionStepType(step)
    if isinstance(step, ConditionalStep):
        return ConditionStepType(step)
    raise TypeError(f"cannot compile step {step!r}")
