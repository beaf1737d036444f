"""The key layout of everything the distributed engine keeps in a ``KVStore``.

Every key starts with the persistence's namespace (default ``flowloom/``)::

    exec/{eid}                  ExecutionRecord: workflow, graph version, inputs, options, parent
    exec/{eid}/final            FinalStatus; written with set_if_absent, so the first writer wins
    exec/{eid}/paused           present while the execution is paused
    exec/{eid}/generation       the record's generation (ASCII), written with it, so a worker
                                leases a delivered step only if its task is of this generation
                                in the one conditional write that reads the execution
    exec/{eid}/step/{node}      StepRecord; every transition (lease, heartbeat, commit) is one CAS
    exec/{eid}/edge/{edge}      "1" taken / "0" skipped; resolved once, by its source's commit
    exec/{eid}/join/{node}      "fire" / "skip"; the join decision, made once (set_if_absent)
    exec/{eid}/arrived/{node}   counter: edges into a join (two or more) resolved so far, each
                                counted in the write that resolves it, once
    exec/{eid}/taken/{node}     counter: of those, the taken ones (the join is decided from
                                the two counts, not by reading its every edge)
    exec/{eid}/history/{gen}    FinalStatus of an earlier generation (recover_failed_execution)
    exec/{eid}/announced/{gen}  present once the final status of that generation was announced
    exec/{eid}/unrunnable       first time a worker could not run it (no such workflow/version)
    exec/{eid}/signal/{event}   SignalRecord for a wait; written once (set_if_absent)
    exec/{eid}/child/{child}    present for each child execution (subflow, loop iteration),
                                written with the child: with a retention, a child's keys expire
                                with its root execution's, not at its own end
    agenda/{eid}/{node}         AgendaEntry: the step is scheduled and not yet done (see below)
    deadline/{eid}              the execution's deadline (only executions with a timeout)
    idx/active/{eid}            executions without a final status
    idx/all/{eid}               every execution, for listing
    leader/recovery             the recovery sweeper's leader lease (owner id, with a TTL)
    worker/{worker_id}          a worker's liveness key (with a short TTL it keeps renewing)

    doorbell/{worker_id}        a *channel* (``KVStore.publish``): tasks other processes offer
                                the worker (see ``distributed.doorbell``)
    exec/{eid}/events           a store *log* (not a value: ``KVStore.log_append``): the
                                execution's event log, JSON ``ExecutionEvent`` entries with
                                store-assigned offsets, trimmed to the newest N, expired with
                                the execution's retention (see ``distributed.events``)

The **agenda** is the scheduling outbox. A step gets an entry when it is scheduled -- in the same
atomic write that creates the execution, or before its task is enqueued -- and loses it only
after it is finished *and* its successors are scheduled (or the execution is final). So a
commit followed by a crash, a lost message, or a duplicate acked by another worker always
leaves a trace that the recovery sweep completes; the sweep reads only the agenda, never
every step of every execution.

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

    def generation(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/generation"

    def steps(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/step/"

    def step(self, eid: str, node_id: str) -> str:
        return f"{self.steps(eid)}{node_id}"

    def events(self, eid: str) -> str:
        """The execution's event log (a store log, in the logs' own namespace)."""
        return f"{self.ns}exec/{eid}/events"

    def edge(self, eid: str, edge_key: str) -> str:
        return f"{self.ns}exec/{eid}/edge/{edge_key}"

    def join(self, eid: str, node_id: str) -> str:
        return f"{self.ns}exec/{eid}/join/{node_id}"

    def arrived(self, eid: str, node_id: str) -> str:
        return f"{self.ns}exec/{eid}/arrived/{node_id}"

    def taken(self, eid: str, node_id: str) -> str:
        return f"{self.ns}exec/{eid}/taken/{node_id}"

    def joins(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/join/"

    def history(self, eid: str, generation: int) -> str:
        return f"{self.ns}exec/{eid}/history/{generation:06d}"

    def announced(self, eid: str, generation: int) -> str:
        return f"{self.ns}exec/{eid}/announced/{generation}"

    def finals_channel(self) -> str:
        """The channel the ids of executions that became final are published on (a notice)."""
        return f"{self.ns}finals"

    def histories(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/history/"

    def signal(self, eid: str, event: str) -> str:
        return f"{self.ns}exec/{eid}/signal/{event}"

    def child(self, eid: str, child_id: str) -> str:
        return f"{self.children(eid)}{child_id}"

    def children(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/child/"

    def unrunnable(self, eid: str) -> str:
        return f"{self.ns}exec/{eid}/unrunnable"

    def agenda_index(self) -> str:
        return f"{self.ns}agenda/"

    def agenda_of(self, eid: str) -> str:
        return f"{self.agenda_index()}{eid}/"

    def agenda(self, eid: str, node_id: str) -> str:
        return f"{self.agenda_of(eid)}{node_id}"

    def deadline_index(self) -> str:
        return f"{self.ns}deadline/"

    def deadline(self, eid: str) -> str:
        return f"{self.deadline_index()}{eid}"

    def worker_index(self) -> str:
        return f"{self.ns}worker/"

    def worker(self, worker_id: str) -> str:
        return f"{self.worker_index()}{worker_id}"

    def doorbell(self, worker_id: str) -> str:
        """The channel a worker hears tasks other processes offer it on (``doorbells``)."""
        return f"{self.ns}doorbell/{worker_id}"

    def leader(self, role: str) -> str:
        return f"{self.ns}leader/{role}"

    def active_index(self) -> str:
        return f"{self.ns}idx/active/"

    def active(self, eid: str) -> str:
        return f"{self.active_index()}{eid}"

    def all_index(self) -> str:
        return f"{self.ns}idx/all/"

    def listed(self, eid: str) -> str:
        return f"{self.all_index()}{eid}"
