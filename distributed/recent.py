"""The definitions that recently run executions began on, by execution id.

A step delivered from the queue names its execution, not its workflow, so a worker learns the
definition (and so which steps the step sees, ``Graph.ancestors``) only from the execution's
record. A worker that ran a step of the execution before already knows it: it then reads the
ancestors' records in the same call that reads the record and leases the step
(``Worker._run_if_fresh``), one round trip instead of two. A guess, checked against the record.
"""

from __future__ import annotations

from collections import OrderedDict

from orchestration import Graph

__all__ = ["RecentDefinitions"]


class RecentDefinitions:
    """The definitions of the last ``size`` executions a worker ran a step of."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._graphs: OrderedDict[str, Graph] = OrderedDict()

    def remember(self, execution_id: str, graph: Graph) -> None:
        self._graphs[execution_id] = graph
        self._graphs.move_to_end(execution_id)
        if len(self._graphs) > self.size:
            self._graphs.popitem(last=False)

    def guess(self, execution_id: str, node_id: str) -> tuple[Graph | None, list[str]]:
        """The definition execution ``execution_id`` is thought to run (None if unknown, or it
        has no step ``node_id``) and the ancestors of ``node_id`` in it."""
        graph = self._graphs.get(execution_id)
        if graph is None or node_id not in graph.nodes:
            return None, []
        return graph, sorted(graph.ancestors(node_id))
