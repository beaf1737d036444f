"""Bounded loops (DESIGN §3-4), shared by both engines: the graph stays acyclic.

A ``loop`` node runs a body -- the blueprint or code workflow ``params.body`` -- as one child
execution per iteration (id ``{execution}.{node}.{n}``), at least once, and again while
``params.while`` (a condition of the safe edge-condition grammar) holds, up to the required
``params.maxIterations`` (without ``while``, it runs ``maxIterations`` times)::

    {"id": "polish", "uses": "loop",
     "params": {"body": "revise", "maxIterations": 3, "while": "score < 8",
                "inputs": {"draft": "draft"}, "outputs": {"draft": "draft", "score": "score"}}}

``inputs`` (``{childKey: source}``) feed each iteration from the loop's state; ``outputs``
(``{stateKey: childKey}``) carry an iteration's results into that state, so the next iteration
(and the condition) sees them. The condition sees the loop's state plus ``iteration`` (the
number of iterations run) and ``output`` (the last iteration's mapped output). The node's
output is ``{"output": <the last iteration's output>, "iterations": n}``; its state updates
are the carried values; its action is ``exhausted`` when it stopped at ``maxIterations`` while
the condition still held (route it, or leave the default route to go on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestration.conditions import compile_condition
from orchestration.errors import ConditionError
from orchestration.graph import Node
from orchestration.jsonvalue import JSON
from orchestration.routing import NodeResult
from orchestration.subflow import ChildOutcome, child_result

__all__ = ["EXHAUSTED", "LOOP", "Iteration", "LoopSpec", "iteration_id", "next_iteration"]

LOOP = "loop"
EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class LoopSpec:
    """A loop node's parameters: ``body``, ``condition`` (``while``), ``max_iterations``."""

    body: str
    max_iterations: int
    condition: str | None = None

    @classmethod
    def of(cls, node: Node) -> LoopSpec:
        params = node.params
        condition, limit = params.get("while"), params.get("maxIterations")
        return cls(
            body=str(params.get("body", "")),
            max_iterations=limit if isinstance(limit, int) else 0,
            condition=condition if isinstance(condition, str) else None,
        )

    @staticmethod
    def problems(node: Node) -> list[str]:
        params, found = node.params, []
        if not isinstance(params.get("body"), str) or not params.get("body"):
            found.append("params.body must name the workflow each iteration runs")
        limit = params.get("maxIterations")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            found.append("params.maxIterations is required: a whole number of at least 1")
        condition = params.get("while")
        if condition is not None:
            try:
                compile_condition(str(condition))
            except ConditionError as exc:
                found.append(f"params.while: {exc}")
        return found


@dataclass(frozen=True)
class Iteration:
    """What follows iteration ``number``: ``again``, or the loop's final ``result``."""

    number: int
    carried: dict[str, JSON]
    again: bool
    result: NodeResult


def iteration_id(execution_id: str, node_id: str, number: int) -> str:
    """The id of iteration ``number`` (from 1) of loop node ``node_id`` (both engines)."""
    return f"{execution_id}.{node_id}.{number}"


def next_iteration(
    node: Node,
    state: Mapping[str, JSON],
    carried: Mapping[str, JSON],
    child: ChildOutcome,
    number: int,
) -> Iteration:
    """Fold iteration ``number``'s completed child into the loop and decide whether to go on."""
    spec = LoopSpec.of(node)
    mapped = child_result(node, child)
    now_carried = {**carried, **mapped.state_updates}
    names = {**state, **now_carried, "iteration": number, "output": mapped.output}
    if spec.condition is None:  # a counted loop: maxIterations times
        again, exhausted = number < spec.max_iterations, False
    else:
        holds = compile_condition(spec.condition).evaluate(names)
        again, exhausted = holds and number < spec.max_iterations, holds
        exhausted = exhausted and not again
    result = NodeResult(
        output={"output": mapped.output, "iterations": number},
        action=EXHAUSTED if exhausted else None,
        state_updates=now_carried,
    )
    return Iteration(number, now_carried, again, result)
