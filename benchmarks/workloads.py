"""The benchmark workflows: no-op steps in three shapes, importable by worker processes.

``flowloom worker benchmarks.workloads:build_engine`` (or ``python -m distributed worker ...``)
loads them, so the processes of a cluster run hold the same definitions as the client.

Shapes: ``chain-10`` (ten steps one after another), ``diamond`` (1 -> 3 -> join) and
``fanout-50`` (1 -> 50 -> join). Every node is ``noop``: it returns ``NodeResult(output=None)``,
so every cost measured is the engine's (store, broker, leases, scheduling).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestration import Engine, Node, NodeContext, NodeResult

__all__ = ["LARGE", "SHAPES", "NoOp", "Shape", "build_engine", "local_engine", "shape"]


class NoOp:
    """A node type that does nothing: every measured cost is the engine's."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        return NodeResult(output=None)


@dataclass(frozen=True)
class Shape:
    """A workflow shape: its id (also the workflow id) and its edges between step ids."""

    name: str
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]

    @property
    def steps(self) -> int:
        return len(self.nodes)

    def predecessors(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {n: [] for n in self.nodes}
        for source, target in self.edges:
            found[target].append(source)
        return found

    def blueprint(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "nodes": [{"id": n, "uses": "noop", "params": {}, "config": {}} for n in self.nodes],
            "edges": [{"source": a, "target": b} for a, b in self.edges],
        }


def chain(name: str, length: int) -> Shape:
    ids = tuple(f"s{i:04d}" for i in range(length))
    return Shape(name, ids, tuple(itertools.pairwise(ids)))


def fan(name: str, width: int) -> Shape:
    """``root`` -> ``width`` branches -> ``join`` (an ``all`` join: one incoming edge each)."""
    branches = tuple(f"b{i:03d}" for i in range(width))
    edges = [("root", b) for b in branches] + [(b, "join") for b in branches]
    return Shape(name, ("root", *branches, "join"), tuple(edges))


SHAPES: dict[str, Shape] = {
    s.name: s for s in (chain("chain-10", 10), fan("diamond", 3), fan("fanout-50", 50))
}


def shape(name: str) -> Shape:
    """The shape called ``name``; ``chain-N`` and ``fanout-N`` build other sizes."""
    if name in SHAPES:
        return SHAPES[name]
    kind, _, size = name.rpartition("-")
    if kind in ("chain", "fanout") and size.isdigit() and int(size) > 0:
        return chain(name, int(size)) if kind == "chain" else fan(name, int(size))
    raise ValueError(f"unknown shape {name!r}: one of {', '.join(SHAPES)}, chain-N, fanout-N")


def local_engine(shapes: Iterable[Shape]) -> Engine:
    """A local engine with the ``noop`` node type and one workflow per shape."""
    engine = Engine()
    engine.node_types.register("noop", NoOp())
    for item in shapes:
        engine.register_blueprint(item.blueprint())
    return engine


# sizes the workers also know, for ``--shapes`` beyond the defaults (is work per step flat?)
LARGE: tuple[Shape, ...] = (chain("chain-200", 200), fan("fanout-200", 200))


def build_engine() -> Engine:
    """The APP of the benchmark's worker processes: every shape of ``SHAPES`` and ``LARGE``."""
    return local_engine([*SHAPES.values(), *LARGE])
