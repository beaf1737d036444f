"""The workflows of the chaos and fault suites, as ``flowloom worker chaos_app:engine`` loads them.

Four shapes: ``chain`` (five steps in a row), ``diamond`` (a -> b, c -> d, an ``all`` join),
``fanout`` (f -> eight branches -> j, an ``all`` join) and ``router`` (r routes to ``left`` or
``right`` by the ``route`` input; both lead to m, an ``any`` join). Every step is a ``logged``
node: it appends ``start|end EXECUTION STEP ATTEMPT PID TIME`` to the file the ``run_log``
input names (one ``os.write`` of one line in append mode, so lines of concurrent processes do not
interleave) and sleeps ``delay`` seconds (``delay`` input, default 0.2) in between. That log is
how a test sees what ran in a process it killed, and when.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from orchestration import Engine, Node, NodeContext, NodeResult

__all__ = ["JOINS", "SHAPES", "STEPS", "build_engine", "engine", "expected_steps"]

DEFAULT_DELAY = 0.2

_BRANCHES = tuple(f"p{i}" for i in range(1, 9))
_SHAPES: dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]] = {
    "chain": (("c1", "c2", "c3", "c4", "c5"), [(f"c{i}", f"c{i + 1}") for i in range(1, 5)]),
    "diamond": (("a", "b", "c", "d"), [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
    "fanout": (
        ("f", *_BRANCHES, "j"),
        [("f", b) for b in _BRANCHES] + [(b, "j") for b in _BRANCHES],
    ),
    "router": (
        ("r", "left", "right", "m"),
        [("r", "left", "left"), ("r", "right", "right"), ("left", "m"), ("right", "m")],
    ),
}
SHAPES = tuple(_SHAPES)
STEPS = {shape: nodes for shape, (nodes, _) in _SHAPES.items()}
JOINS = {"diamond": "d", "fanout": "j", "router": "m"}  # the join step of each shape


def expected_steps(shape: str, route: str = "left") -> dict[str, str]:
    """Step -> the status it must end in when an execution of ``shape`` completes."""
    statuses = dict.fromkeys(STEPS[shape], "completed")
    if shape == "router":
        statuses["right" if route == "left" else "left"] = "skipped"
    return statuses


class Logged:
    """The chaos node type: logs its start and end, sleeps ``delay`` seconds in between; the
    router (``routes: true``) takes the action the ``route`` input names."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        _log(ctx, "start")
        await asyncio.sleep(float(ctx.state.get("delay", DEFAULT_DELAY)))  # type: ignore[arg-type]
        _log(ctx, "end")
        output = f"{node.id}@{ctx.execution_id}"
        action = str(ctx.state.get("route", "left")) if node.params.get("routes") else None
        return NodeResult(output=output, action=action, state_updates={node.id: output})


def _log(ctx: NodeContext, kind: str) -> None:
    path = ctx.state.get("run_log")
    if not isinstance(path, str):
        return
    line = (
        f"{kind} {ctx.execution_id} {ctx.node.id} {ctx.attempt} {os.getpid()} {time.time():.6f}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _blueprint(shape: str) -> dict[str, Any]:
    nodes, edges = _SHAPES[shape]
    join = {"m": {"joinStrategy": "any"}} if shape == "router" else {}
    return {
        "id": shape,
        "nodes": [
            {
                "id": n,
                "uses": "logged",
                "params": {"routes": True} if n == "r" else {},
                "config": join.get(n, {}),
            }
            for n in nodes
        ],
        "edges": [
            {"source": e[0], "target": e[1], **({"action": e[2]} if len(e) == 3 else {})}
            for e in edges
        ],
    }


def build_engine() -> Engine:
    """A local engine holding the four shapes."""
    local = Engine()
    local.node_types.register("logged", Logged())
    for shape in SHAPES:
        local.register_blueprint(_blueprint(shape))
    return local


engine = build_engine()
