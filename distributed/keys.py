"""The key layout of everything the distributed engine keeps in a ``KVStore``.

Every key starts with the persistence's namespace (default ``flowloom/``)::

    exec/{eid}                  ExecutionRecord: workflow, graph version, inputs, options, parent
    exec/{eid}/final            FinalStatus; written with set_if_absent, so the first writer wins
    exec/{eid}/paused           present while the execution is paused
    exec/{eid}/seq              commit counter; orders state updates of parallel branches
    exec/{eid}/step/{node}      StepRecord; every transition (lease, heartbeat, commit) is one CAS
    exec/{eid}/edge/{edge}      "1" taken / "0" skipped; resolved once (set_if_absent)
    exec/{eid}/join/{node}      "fire" / "skip"; the join decision, made once (set_if_absent)
    idx/active/{eid}            executions without a final status (scanned by the reaper)
    idx/all/{eid}               every execution, for listing

A step's checkpoint -- output, action, state updates, routing decision -- lives in its one
``StepRecord`` key, so recording it is a single atomic compare-and-set fenced by the lease token.
"""

from __future__ import annotations

__all__ = ["Keys"]


class Keys:
    """Builds the keys of one namespace."""

    def __init__(self, namespace: str = "flowloom/") -> None:
        self.ns = namespace

    def execution(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}"

    def final(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/final"

    def paused(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/paused"

    def seq(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/seq"

    def steps(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/step/"

    def step(self, eid: str, node_id: str) -> str:
        return f"{self.steps(eid)}{node_id}"

    def edge(self, eid: str, edge_key: str) -> str:
        return f"{self.ns}exec/{eid}/edge/{edge_key}"

    def join(self, eid: str, node_id: str) -> str:
        return f"{self.ns}exec/{eid}/join/{node_id}"

    def joins(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/join/"

    def active_index(self) -> str:
        return f"{self.ns}idx/active/"

    def active(self, eid: str) -> str:
        return f"{self.active_index()}{eid}"

    def all_index(self) -> str:
        return f"{self.ns}idx/all/"

    def listed(self, eid: str) -> str:
        return f"{self.all_index()}{eid}"
