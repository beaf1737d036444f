"""``WorkflowPersistence``: the durable record of executions, built on any ``KVStore``.

``KVPersistence`` keeps the layout of ``distributed.keys``. It implements only storage; the
semantics (leases, joins, completion) live in the scheduler and worker, on these primitives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from store import Delete, Incr, KVStore, Publish, Put

from .errors import InvalidSettings
from .failpoints import failpoint
from .keys import Keys
from .models import AgendaEntry, ExecutionRecord, FinalStatus, SignalRecord, StepRecord
from .roots import root_ended

__all__ = [
    "Committed",
    "Finish",
    "JoinCount",
    "KVPersistence",
    "StatusView",
    "SweepView",
    "TaskView",
    "VersionedStep",
    "WorkflowPersistence",
]

_FIRE, _SKIP = "fire", "skip"
_TOLD = b"\x00told"  # never a claimer id
_RIDE_TIME = 0.02  # seconds an owed write (agenda removal, told mark) waits for a write to ride on

log = logging.getLogger(__name__)


class VersionedStep(NamedTuple):
    """A step record with the exact bytes it was read as: the expected value of the next CAS."""

    raw: bytes
    record: StepRecord


class JoinCount(NamedTuple):
    """Edges into a join: how many are resolved (``arrived``) and how many of those taken;
    what a commit adds to a join's counters, or what they hold."""

    arrived: int
    taken: int


class Finish(NamedTuple):
    """A final status to store, the id of the scheduler that claims its announcement
    (``set_final``; with a step's commit, ``commit_step``), and a child execution's parent
    (its keys expire with its root's)."""

    status: FinalStatus
    claimer: str
    parent: str | None = None


class Committed(NamedTuple):
    """A step's commit that won (``commit_step``): the step's new version, whether the
    successor leased with it was written (``handed_on``), the counters of the joins its
    edges lead into as the commit left them (``joins``), and whether the final status
    written with it was (``finished``)."""

    step: VersionedStep
    handed_on: bool
    joins: Mapping[str, JoinCount]
    finished: bool = False


@dataclass(frozen=True)
class SweepView:
    """What the recovery sweep reads of one execution with agenda entries."""

    record: ExecutionRecord | None
    final: FinalStatus | None
    paused: bool
    steps: dict[str, VersionedStep | None]


@dataclass(frozen=True)
class StatusView:
    """An execution's record, final status and whether it is paused, read in one round trip
    (``record`` None: no such execution)."""

    record: ExecutionRecord | None
    final: FinalStatus | None
    paused: bool


@dataclass(frozen=True)
class TaskView:
    """What a worker reads before running a step, fetched in one round trip."""

    record: ExecutionRecord | None
    final: FinalStatus | None
    step: VersionedStep | None
    paused: bool
    on_agenda: bool  # scheduled and not yet finished-and-advanced
    upstream: dict[str, VersionedStep | None] = field(default_factory=dict)  # records asked for


class WorkflowPersistence(Protocol):
    async def create_execution(
        self,
        record: ExecutionRecord,
        start_nodes: Sequence[str],
        rings: Mapping[str, bytes] | None = None,
        started: Sequence[VersionedStep] = (),
    ) -> bool: ...
    async def record(self, eid: str) -> ExecutionRecord | None: ...
    async def final(self, eid: str) -> FinalStatus | None: ...
    async def status_view(self, eid: str) -> StatusView: ...
    async def lease_or_view(
        self, eid: str, generation: int, started: StepRecord, upstream: Sequence[str] = ()
    ) -> tuple[VersionedStep | None, TaskView]: ...
    async def unstart(self, eid: str, started: VersionedStep) -> None: ...
    async def finals(self, eids: Sequence[str]) -> list[FinalStatus | None]: ...
    async def sweep_views(self, agenda: Mapping[str, Sequence[str]]) -> dict[str, SweepView]: ...
    async def set_final(
        self, eid: str, final: FinalStatus, claimer: str, *, parent: str | None = None
    ) -> tuple[FinalStatus, bool]: ...
    async def claim_announcement(
        self, eid: str, generation: int, claimer: str, *, take_over: bool = False
    ) -> bool: ...
    def mark_announced_soon(
        self, eid: str, generation: int, *, retire: str | None = None
    ) -> None: ...
    async def steps(self, eid: str) -> dict[str, VersionedStep]: ...
    async def step(self, eid: str, node_id: str) -> VersionedStep | None: ...
    async def steps_of(
        self, eid: str, node_ids: Sequence[str]
    ) -> dict[str, VersionedStep | None]: ...
    async def swap_step(
        self, eid: str, expected: VersionedStep | None, new: StepRecord
    ) -> VersionedStep | None: ...
    async def resolve_edges(
        self, eid: str, edges: Mapping[str, bool], joins: Mapping[str, str]
    ) -> None: ...
    async def join_counts(self, eid: str, node_ids: Sequence[str]) -> dict[str, JoinCount]: ...
    async def commit_step(
        self,
        eid: str,
        expected: VersionedStep,
        new: StepRecord,
        *,
        edges: Mapping[str, bool],
        fired: Sequence[str],
        now: float,
        started: Sequence[VersionedStep] = (),
        retire: bool = False,
        arrivals: Mapping[str, JoinCount] | None = None,
        final: Finish | None = None,
    ) -> Committed | None: ...
    async def fire_join(
        self,
        eid: str,
        node_id: str,
        started: VersionedStep,
        *,
        retire: str,
        now: float,
        upstream: Sequence[str] = (),
    ) -> dict[str, VersionedStep | None] | None: ...
    async def decide_join(self, eid: str, node_id: str, fire: bool) -> tuple[bool, bool]: ...
    async def start_fresh(self, eid: str, started: StepRecord) -> VersionedStep | None: ...
    async def fired_nodes(self, eid: str) -> list[str]: ...
    async def set_paused(self, eid: str, paused: bool) -> None: ...
    def active_executions(self) -> AsyncIterator[str]: ...
    def all_executions(self) -> AsyncIterator[str]: ...
    async def purge(self, eid: str) -> None: ...
    def finals_told(self) -> AsyncIterator[str]: ...
    async def schedule(self, eid: str, node_ids: Sequence[str], now: float) -> None: ...
    async def unschedule(self, eid: str, node_id: str) -> None: ...
    def unschedule_soon(self, eid: str, node_id: str) -> None: ...
    async def flush_unscheduled(self) -> None: ...
    def agenda(self, eid: str | None = None) -> AsyncIterator[AgendaEntry]: ...
    def deadlines(self) -> AsyncIterator[tuple[str, float]]: ...
    async def mark_unrunnable(self, eid: str, now: float) -> float: ...
    async def put_signal(self, eid: str, signal: SignalRecord) -> bool: ...
    async def signal(self, eid: str, event: str) -> SignalRecord | None: ...
    async def history(self, eid: str) -> list[FinalStatus]: ...
    async def start_generation(
        self,
        current: ExecutionRecord,
        final: FinalStatus,
        new: ExecutionRecord,
        reset: Sequence[str],
        scheduled: Sequence[str],
    ) -> bool: ...
    async def hold_leadership(self, role: str, owner: str, ttl: float) -> bool: ...
    async def give_up_leadership(self, role: str, owner: str) -> None: ...
    async def touch_worker(self, worker_id: str, ttl: float, free_slots: int = 0) -> None: ...
    async def forget_worker(self, worker_id: str) -> None: ...
    async def live_workers(self, worker_ids: Sequence[str]) -> set[str]: ...
    async def free_slots(self) -> dict[str, int]: ...
    async def ring(self, worker_id: str, message: bytes) -> None: ...
    def rings(self, worker_id: str) -> AsyncIterator[bytes]: ...


class KVPersistence:
    """``WorkflowPersistence`` over a ``KVStore`` (memory, LevelDB or Redis)."""

    def __init__(
        self, store: KVStore, *, namespace: str = "flowloom/", retention: float | None = None
    ):
        if retention is not None and not retention > 0:
            raise InvalidSettings(f"retention must be > 0 seconds or None (keep), not {retention}")
        self.store = store
        self.keys = Keys(namespace)
        self.retention = retention
        self._owed: dict[str, Put | Delete] = {}  # writes owed, by key (``unschedule_soon``)
        self._flusher: asyncio.Task[None] | None = None

    async def create_execution(
        self,
        record: ExecutionRecord,
        start_nodes: Sequence[str],
        rings: Mapping[str, bytes] | None = None,
        started: Sequence[VersionedStep] = (),
    ) -> bool:
        """In one atomic write (False if the id exists): the record, the start nodes fired and
        on the agenda, the indexes (a child's in its parent's too), and the deadline of an
        execution with a timeout; then, if it was written, the ``rings`` (worker id -> message,
        as ``ring`` sends them). ``started``: the first attempts of some start nodes, each
        leased to a slot of this process that runs it next (as ``commit_step`` writes a
        successor's), written too -- then only if those steps have no record either."""
        eid, keys = record.execution_id, self.keys
        expect: dict[str, bytes | None] = {keys.execution(eid): None}
        expect |= {keys.step(eid, first.record.node_id): None for first in started}
        joins = [Put(keys.join(eid, node), _FIRE.encode()) for node in start_nodes]
        index = [Put(keys.active(eid), b""), Put(keys.listed(eid), b"")]
        if record.parent is not None:
            index.append(Put(keys.child(record.parent.execution_id, eid), b""))
        ops: list[Put | Publish] = [
            Put(keys.execution(eid), record.to_bytes()),
            _generation_put(keys, record),
        ]
        ops += [*joins, *index]
        ops += self._agenda_puts(eid, start_nodes, record.created_at)
        ops += self._deadline_puts(record)
        ops += [Put(keys.step(eid, first.record.node_id), first.raw) for first in started]
        ops += [Publish(keys.doorbell(w), message) for w, message in (rings or {}).items()]
        return await self.store.batch_if(expect, ops)

    async def record(self, eid: str) -> ExecutionRecord | None:
        raw = await self.store.get(self.keys.execution(eid))
        return None if raw is None else ExecutionRecord.from_bytes(raw)

    async def final(self, eid: str) -> FinalStatus | None:
        return (await self.finals([eid]))[0]

    async def status_view(self, eid: str) -> StatusView:
        keys = self.keys
        wanted = [keys.execution(eid), keys.final(eid), keys.paused(eid)]
        record, final, paused = await self.store.get_many(wanted)
        return StatusView(
            record=None if record is None else ExecutionRecord.from_bytes(record),
            final=None if final is None else FinalStatus.from_bytes(final),
            paused=paused is not None,
        )

    async def lease_or_view(
        self, eid: str, generation: int, started: StepRecord, upstream: Sequence[str] = ()
    ) -> tuple[VersionedStep | None, TaskView]:
        """What a worker reads before running a delivered step, and in the same atomic step
        the lease on its first attempt (``started``) if the step has no record yet and the
        execution is of ``generation`` (its task's) and neither final nor paused: the leased
        version (None if not leased) and the view as it was before, with the records of the
        steps ``upstream`` (those the step will see, when the worker knows them)."""
        keys, raw = self.keys, started.to_bytes()
        step_key = keys.step(eid, started.node_id)
        expected = {
            step_key: None,
            keys.final(eid): None,
            keys.paused(eid): None,
            keys.generation(eid): str(generation).encode(),
        }
        read = [keys.execution(eid), keys.final(eid), step_key, keys.paused(eid)]
        also = [keys.step(eid, node) for node in upstream]
        leased, raws = await self.store.get_and_batch_if(
            [*read, keys.agenda(eid, started.node_id), *also], expected, [Put(step_key, raw)]
        )
        record, final, step, paused, agenda = raws[:5]
        view = TaskView(
            record=None if record is None else ExecutionRecord.from_bytes(record),
            final=None if final is None else FinalStatus.from_bytes(final),
            step=_versioned(step),
            paused=paused is not None,
            on_agenda=agenda is not None,
            upstream=_versions(upstream, raws[5:]),
        )
        return (VersionedStep(raw, started) if leased else None), view

    async def unstart(self, eid: str, started: VersionedStep) -> None:
        """Undo the lease ``lease_or_view`` took on a step with no record (the worker may not run
        it after all): the step has no record again, unless it moved since."""
        key = self.keys.step(eid, started.record.node_id)
        await self.store.batch_if({key: started.raw}, [Delete(key)])

    async def sweep_views(self, agenda: Mapping[str, Sequence[str]]) -> dict[str, SweepView]:
        """For each execution, its record, whether it is final or paused, and the records of
        the given steps: in one read of every key (``get_many``). An execution with a record
        that cannot be decoded has no view: one bad record must not stop the whole sweep."""
        keys, wanted = self.keys, []
        for eid, nodes in agenda.items():
            wanted += [keys.execution(eid), keys.final(eid), keys.paused(eid)]
            wanted += [keys.step(eid, node) for node in nodes]
        raws = iter(await self.store.get_many(wanted))
        views = {}
        for eid, nodes in agenda.items():
            record, final, paused, *steps = [next(raws) for _ in range(3 + len(nodes))]
            with suppress(ValueError):  # pydantic's ValidationError: an undecodable record
                views[eid] = SweepView(
                    record=None if record is None else ExecutionRecord.from_bytes(record),
                    final=None if final is None else FinalStatus.from_bytes(final),
                    paused=paused is not None,
                    steps=_versions(nodes, steps),
                )
        return views

    async def finals(self, eids: Sequence[str]) -> list[FinalStatus | None]:
        raws = await self.store.get_many([self.keys.final(eid) for eid in eids])
        return [None if raw is None else FinalStatus.from_bytes(raw) for raw in raws]

    async def set_final(
        self, eid: str, final: FinalStatus, claimer: str, *, parent: str | None = None
    ) -> tuple[FinalStatus, bool]:
        """First writer wins: return the status in force and whether this call set it. The
        winner also claims its announcement (``claim_announcement``) in the same write, so
        no other finalizer tells it first, and the write that stores the status sends its
        notice (``finals_told``), so a status stored is always told, even by a writer that
        dies right after. ``parent``: a child execution's, whose keys expire with its root's
        (``_expire_ended``)."""
        ops = self._final_ops(eid, final, claimer)
        if await self._write({self.keys.final(eid): None}, ops) is not None:
            await self._expire_ended(eid, parent)
            return final, True
        current = await self.final(eid)
        if current is None:  # purged or expired in between: report ours, which did not win
            return final, False
        return current, False

    def _final_ops(
        self, eid: str, final: FinalStatus, claimer: str
    ) -> list[Put | Delete | Publish]:
        """The writes that store a final status (``set_final``)."""
        keys = self.keys
        return [
            Put(keys.final(eid), final.to_bytes()),
            Put(keys.announced(eid, final.generation), claimer.encode(), ttl=self.retention),
            Delete(keys.active(eid)),
            Delete(keys.deadline(eid)),
            Publish(keys.finals_channel(), eid.encode()),
        ]

    async def _expire_ended(self, eid: str, parent: str | None) -> None:
        """With ``retention``: the keys and event logs of a root execution that ended and of
        its descendants expire. A child's do not when it ends: its parent takes its result
        later (its ``child-finished`` task, or the sweep after a crash or an outage that may
        outlast the retention) and would wait for a child gone. Unless its root has ended
        already (a child recovered alone, or started as its root ended): then nothing waits
        for it, and nothing else would expire it. The execution's own log expires by the
        event recorder, after the final event it appends (``EventRecorder``)."""
        ttl = self.retention
        if ttl is None:
            return
        if parent is not None and not await root_ended(self.store, self.keys, parent):
            return
        descendants = await self._descendants(eid)
        logs = (self.store.log_expire(self.keys.events(d), ttl) for d in descendants)
        expiring = (self._expire_execution(d, ttl) for d in [eid, *descendants])
        await asyncio.gather(*expiring, *logs)

    async def _descendants(self, eid: str) -> list[str]:
        """The ids of the execution's children, theirs, and so on (one scan per generation of
        children, side by side)."""
        found: list[str] = []
        level = [eid]
        while level:
            scans = await asyncio.gather(*(self._children(parent) for parent in level))
            level = [child for children in scans for child in children]
            found += level
        return found

    async def _children(self, eid: str) -> list[str]:
        prefix = self.keys.children(eid)
        return [key.removeprefix(prefix) async for key, _ in self.store.scan(prefix)]

    async def claim_announcement(
        self, eid: str, generation: int, claimer: str, *, take_over: bool = False
    ) -> bool:
        """True for one claimer per generation: the one that announces its final status (to
        the hooks, to a subflow's parent). ``set_final`` claims it for its winner, which is
        read back here, so a winner whose answer was lost -- its status written, an error
        heard -- still tells when it finalizes again (same ``claimer`` id), until it is
        ``mark_announced_soon``. ``take_over`` moves a claim nobody told to ``claimer`` (the sweep,
        once the winner had time enough to tell: it died)."""
        key, me = self.keys.announced(eid, generation), claimer.encode()
        try:
            if await self.store.set_if_absent(key, me, ttl=self.retention):
                return True
        except Exception:  # the claim may be written though its answer was lost: read it
            pass
        holder = await self.store.get(key)
        if holder in (me, None) or holder == _TOLD or not take_over:
            return holder == me
        return await self.store.compare_and_set(key, holder, me, ttl=self.retention)

    def mark_announced_soon(self, eid: str, generation: int, *, retire: str | None = None) -> None:
        """The claimer told: nobody claims this generation's announcement again, and the step
        ``retire`` (the last, whose advance ended with the completion) leaves the agenda. Not
        before: a final status whose telling was lost is told by the sweep finding that step
        still on the agenda. Owed, as ``unschedule_soon``: if the process dies owing it, the
        sweep tells the status again (it does so only once the status is ``settle_time``
        old), so a crash right after a telling can repeat it, as it could before it."""
        told = self.keys.announced(eid, generation)
        self._owe(Put(told, _TOLD, ttl=self.retention))
        if retire is not None:
            self._owe(Delete(self.keys.agenda(eid, retire)))

    async def steps(self, eid: str) -> dict[str, VersionedStep]:
        prefix = self.keys.steps(eid)
        return {
            key.removeprefix(prefix): VersionedStep(raw, StepRecord.from_bytes(raw))
            async for key, raw in self.store.scan(prefix)
        }

    async def step(self, eid: str, node_id: str) -> VersionedStep | None:
        raw = await self.store.get(self.keys.step(eid, node_id))
        return None if raw is None else VersionedStep(raw, StepRecord.from_bytes(raw))

    async def steps_of(self, eid: str, node_ids: Sequence[str]) -> dict[str, VersionedStep | None]:
        """The records of some steps, in one round trip (None: not started)."""
        raws = await self.store.get_many([self.keys.step(eid, node) for node in node_ids])
        return _versions(node_ids, raws)

    async def swap_step(
        self, eid: str, expected: VersionedStep | None, new: StepRecord
    ) -> VersionedStep | None:
        """Compare-and-set one step record; the new version on success, None if it moved."""
        raw = new.to_bytes()
        key = self.keys.step(eid, new.node_id)
        swapped = await self.store.compare_and_set(
            key, None if expected is None else expected.raw, raw
        )
        return VersionedStep(raw, new) if swapped else None

    async def resolve_edges(
        self, eid: str, edges: Mapping[str, bool], joins: Mapping[str, str]
    ) -> None:
        """Resolve each edge once as taken or skipped; a later resolution changes nothing. An
        edge into a join (``joins``: edge key -> the join) is counted at the join in the
        same write, so only once (``join_counts``)."""
        for edge_key, taken in edges.items():
            key, value = self.keys.edge(eid, edge_key), b"1" if taken else b"0"
            join = joins.get(edge_key)
            if join is None:
                await self.store.set_if_absent(key, value)
            else:
                arrival = self._arrival_ops(eid, join, JoinCount(1, int(taken)))
                await self.store.batch_if({key: None}, [Put(key, value), *arrival])

    async def join_counts(self, eid: str, node_ids: Sequence[str]) -> dict[str, JoinCount]:
        """The counters of joins: their edges resolved so far, and taken."""
        wanted = [key for node in node_ids for key in self._counter_keys(eid, node)]
        return _join_counts(node_ids, await self.store.get_many(wanted))

    def _counter_keys(self, eid: str, join: str) -> tuple[str, str]:
        return self.keys.arrived(eid, join), self.keys.taken(eid, join)

    def _arrival_ops(self, eid: str, join: str, count: JoinCount) -> list[Incr]:
        arrived, taken = self._counter_keys(eid, join)
        return [Incr(arrived, count.arrived)] + ([Incr(taken, count.taken)] if count.taken else [])

    async def commit_step(
        self,
        eid: str,
        expected: VersionedStep,
        new: StepRecord,
        *,
        edges: Mapping[str, bool],
        fired: Sequence[str],
        now: float,
        started: Sequence[VersionedStep] = (),
        retire: bool = False,
        arrivals: Mapping[str, JoinCount] | None = None,
        final: Finish | None = None,
    ) -> Committed | None:
        """Record a step's outcome in one atomic write, if the step is still ``expected``:
        the new record, its outgoing ``edges`` resolved, and the successors it alone decides
        (``fired``: one incoming edge, taken) fired and on the agenda. None if the step moved.
        ``started``: the first attempts of some of ``fired``, each leased to a worker of the
        committing process, written too -- then only if those successors have no record and
        the execution is neither final nor paused (the conditions of ``start_fresh``); None if
        they do not hold either. ``retire`` (with ``started``): the step also leaves the
        agenda -- nothing is left of its advance when its successors are ``started`` by this
        write. ``arrivals``: what the step's edges add to the counters of the joins they lead
        into; the counters are read back in the same atomic step (``Committed.joins``: of
        several commits into one join, the last sees every edge counted). ``final``: the
        execution's final status, which the step completes, stored with it as ``set_final``
        stores it -- then only if the execution has none yet; None if it has one.

        Edges are plain writes, and counted without a condition: only the one commit of
        their source that wins resolves them (a re-run advance resolves them only if absent,
        ``resolve_edges``)."""
        keys, raw = self.keys, new.to_bytes()
        expect: dict[str, bytes | None] = {keys.step(eid, new.node_id): expected.raw}
        ops: list[Put | Delete | Incr | Publish] = [Put(keys.step(eid, new.node_id), raw)]
        ops += [Put(keys.edge(eid, key), b"1" if taken else b"0") for key, taken in edges.items()]
        ops += [Put(keys.join(eid, node), _FIRE.encode()) for node in fired]
        ops += self._agenda_puts(eid, fired, now)
        if started:
            expect |= {keys.final(eid): None, keys.paused(eid): None}
            for first in started:
                successor = keys.step(eid, first.record.node_id)
                expect[successor] = None
                ops.append(Put(successor, first.raw))
            if retire:
                ops.append(Delete(keys.agenda(eid, new.node_id)))
        if final is not None:
            expect[keys.final(eid)] = None
            ops += self._final_ops(eid, final.status, final.claimer)
        arrivals = arrivals or {}
        for join, count in arrivals.items():
            ops += self._arrival_ops(eid, join, count)
        joins = list(arrivals)
        wanted = [key for join in joins for key in self._counter_keys(eid, join)]
        read = await self._write(expect, ops, wanted)
        if read is None:
            return None
        if final is not None:
            await self._expire_ended(eid, final.parent)
        counts = _join_counts(joins, read)
        return Committed(VersionedStep(raw, new), bool(started), counts, final is not None)

    async def fire_join(
        self,
        eid: str,
        node_id: str,
        started: VersionedStep,
        *,
        retire: str,
        now: float,
        upstream: Sequence[str] = (),
    ) -> dict[str, VersionedStep | None] | None:
        """Fire a join whose every incoming edge its last source's commit saw resolved, in
        one conditional write: the decision, the join on the agenda, its first attempt
        ``started`` (leased to that source's worker), and the source off the agenda
        (``retire``: nothing is left of its advance). Only if the join is undecided and has
        no record and the execution is neither final nor paused; None otherwise (then the
        usual advance decides it, idempotently). Fired: the records of the steps
        ``upstream`` (those the join sees), read in the same step."""
        keys = self.keys
        join, step = keys.join(eid, node_id), keys.step(eid, node_id)
        expect = {join: None, step: None, keys.final(eid): None, keys.paused(eid): None}
        ops: list[Put | Delete] = [Put(join, _FIRE.encode()), Put(step, started.raw)]
        ops += self._agenda_puts(eid, [node_id], now)
        ops.append(Delete(keys.agenda(eid, retire)))
        read = await self._write(expect, ops, [keys.step(eid, node) for node in upstream])
        if read is None:
            return None
        return _versions(upstream, read)

    async def start_fresh(self, eid: str, started: StepRecord) -> VersionedStep | None:
        """Write the first attempt of a step in one conditional write: only if the step has no
        record yet and the execution is neither final nor paused. None otherwise."""
        keys, raw = self.keys, started.to_bytes()
        step = keys.step(eid, started.node_id)
        expected = {step: None, keys.final(eid): None, keys.paused(eid): None}
        won = await self.store.batch_if(expected, [Put(step, raw)])
        return VersionedStep(raw, started) if won else None

    async def decide_join(self, eid: str, node_id: str, fire: bool) -> tuple[bool, bool]:
        """Record the join decision once; return the decision in force (True = fire) and
        whether this call made it."""
        key = self.keys.join(eid, node_id)
        made = await self.store.set_if_absent(key, (_FIRE if fire else _SKIP).encode())
        if made:
            return fire, True
        return await self.store.get(key) == _FIRE.encode(), False

    async def fired_nodes(self, eid: str) -> list[str]:
        prefix = self.keys.joins(eid)
        return [
            key.removeprefix(prefix)
            async for key, raw in self.store.scan(prefix)
            if raw == _FIRE.encode()
        ]

    async def set_paused(self, eid: str, paused: bool) -> None:
        if paused:
            await self.store.put(self.keys.paused(eid), b"1")
        else:
            await self.store.delete(self.keys.paused(eid))

    async def active_executions(self) -> AsyncIterator[str]:
        prefix = self.keys.active_index()
        async for key, _ in self.store.scan(prefix):
            yield key.removeprefix(prefix)

    async def all_executions(self) -> AsyncIterator[str]:
        prefix = self.keys.all_index()
        async for key, _ in self.store.scan(prefix):
            yield key.removeprefix(prefix)

    async def finals_told(self) -> AsyncIterator[str]:
        """The ids of the executions whose final status is stored from now on (``set_final``
        sends them as notices), in every process of the store: so their waiters read the
        status now instead of at their next poll."""
        async for message in self.store.listen(self.keys.finals_channel()):
            yield message.decode()

    async def purge(self, eid: str) -> None:
        """Delete every key and the event log of one execution and of its descendants (the
        child executions of its subflows and loops, theirs, and so on)."""
        purges = (self._purge_one(each) for each in [eid, *await self._descendants(eid)])
        await asyncio.gather(*purges)  # side by side: one round trip per stage on Redis

    async def _purge_one(self, eid: str) -> None:
        keys = [key async for key in self._execution_keys(eid)]
        await self.store.batch([Delete(key) for key in keys])
        await self.store.log_delete(self.keys.events(eid))

    # -- the agenda (scheduling outbox), deadlines, generations ---------------------------------

    async def schedule(self, eid: str, node_ids: Sequence[str], now: float) -> None:
        """Put steps on the agenda before their tasks are enqueued."""
        if node_ids:
            await self.store.batch(self._agenda_puts(eid, node_ids, now))

    async def unschedule(self, eid: str, node_id: str) -> None:
        """Take a step off the agenda: it is done and its successors are scheduled."""
        await self.store.delete(self.keys.agenda(eid, node_id))

    def unschedule_soon(self, eid: str, node_id: str) -> None:
        """``unschedule``, owed: the removal rides on this process's next commit (or final
        status, or fired join), or goes in a write of its own within ``_RIDE_TIME``, instead
        of costing a round trip now. Until then the entry only says what it said (the step's
        advance may be unfinished); if the process dies owing it, the sweep finishes the
        advance again, which changes nothing, and takes the step off."""
        self._owe(Delete(self.keys.agenda(eid, node_id)))

    def _owe(self, op: Put | Delete) -> None:
        self._owed[op.key] = op
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def flush_unscheduled(self) -> None:
        """Make the owed writes now (``unschedule_soon``, ``mark_announced_soon``); if the
        store fails, they stay owed."""
        owed, self._owed = self._owed, {}
        if not owed:
            return
        try:
            await self.store.batch(list(owed.values()))
        except Exception as exc:
            self._still_owe(owed)
            log.warning("%d agenda removals and marks stay owed: %r", len(owed), exc)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(_RIDE_TIME)
        await self.flush_unscheduled()

    async def _write(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr | Publish],
        wanted: Sequence[str] = (),
    ) -> list[bytes | None] | None:
        """``batch_if_get`` of ``ops`` with the owed writes riding on it; they are owed again
        if it does not apply or its answer is lost."""
        owed, self._owed = self._owed, {}
        try:
            read = await self.store.batch_if_get(expected, [*ops, *owed.values()], wanted)
        except BaseException:
            self._still_owe(owed)
            raise
        if read is None:
            self._still_owe(owed)
        return read

    def _still_owe(self, owed: dict[str, Put | Delete]) -> None:
        """Owe again what a write did not make (what was owed since is newer: it wins)."""
        owed.update(self._owed)
        self._owed = owed

    async def agenda(self, eid: str | None = None) -> AsyncIterator[AgendaEntry]:
        prefix = self.keys.agenda_index() if eid is None else self.keys.agenda_of(eid)
        async for _, raw in self.store.scan(prefix):
            entry = AgendaEntry.from_bytes(raw)
            if eid is None or entry.execution_id == eid:
                yield entry

    async def deadlines(self) -> AsyncIterator[tuple[str, float]]:
        prefix = self.keys.deadline_index()
        async for key, raw in self.store.scan(prefix):
            yield key.removeprefix(prefix), float(raw)

    async def mark_unrunnable(self, eid: str, now: float) -> float:
        """When a worker first found it could not run this execution (kept; returned)."""
        key = self.keys.unrunnable(eid)
        await self.store.set_if_absent(key, repr(now).encode())
        raw = await self.store.get(key)
        return now if raw is None else float(raw)

    async def put_signal(self, eid: str, signal: SignalRecord) -> bool:
        """Keep a signal for its wait, once per event (False: one was already sent)."""
        key = self.keys.signal(eid, signal.event)
        return await self.store.set_if_absent(key, signal.to_bytes())

    async def signal(self, eid: str, event: str) -> SignalRecord | None:
        raw = await self.store.get(self.keys.signal(eid, event))
        return None if raw is None else SignalRecord.from_bytes(raw)

    async def history(self, eid: str) -> list[FinalStatus]:
        prefix = self.keys.histories(eid)
        return [FinalStatus.from_bytes(raw) async for _, raw in self.store.scan(prefix)]

    async def start_generation(
        self,
        current: ExecutionRecord,
        final: FinalStatus,
        new: ExecutionRecord,
        reset: Sequence[str],
        scheduled: Sequence[str],
    ) -> bool:
        """Atomically, if the record and final status are still ``current`` and ``final``: file
        the final status in the history, write the ``new`` record, delete the ``reset`` steps and
        put ``scheduled`` on the agenda. False if anything moved (another recovery won).
        With ``retention``, the expiry the final status gave the execution's keys and event
        log is taken back (the steps kept would expire under the new generation, which then
        waited for them forever): before the write, so that a crash right after it leaves
        nothing to expire, and again after it, for an expiry the event recorder of the old
        generation gave the log in between (it gives one only while that generation is the
        current one); should the new generation end before that, its end's expiry is given
        again (``_expire_ended``). The write puts back the keys outside those prefixes."""
        eid, keys = current.execution_id, self.keys
        expected = await self._as_stored({keys.execution(eid): current, keys.final(eid): final})
        if expected is None:
            return False
        await self._keep(eid)
        ops: list[Put | Delete] = [
            Put(keys.history(eid, current.generation), final.to_bytes()),
            Put(keys.execution(eid), new.to_bytes()),
            _generation_put(keys, new),
            Delete(keys.final(eid)),
            Delete(keys.unrunnable(eid)),
            Put(keys.active(eid), b""),
            Put(keys.listed(eid), b""),
            *(Delete(keys.step(eid, node)) for node in reset),
            *self._agenda_puts(eid, scheduled, new.generation_started_at or time.time()),
            *self._deadline_puts(new),
        ]
        if not await self.store.batch_if(expected, ops):
            return False  # another recovery won: its generation's end expires them again
        failpoint("after-generation")
        await self._keep(eid)
        if await self.final(eid) is not None:  # the new generation ended before that keep
            await self._expire_ended(eid, new.parent_id)
        return True

    async def _keep(self, eid: str) -> None:
        """With ``retention``: the records and event logs of the execution and of its
        descendants (``_expire_ended`` gave them the root's expiry) expire no more."""
        if self.retention is None:
            return
        descendants = await self._descendants(eid)
        calls: list[Awaitable[object]] = [self._keep_records(descendants)]
        for execution_id in [eid, *descendants]:
            calls += self._expire_prefixes(execution_id, None)
            calls.append(self.store.log_expire(self.keys.events(execution_id), None))
        await asyncio.gather(*calls)

    async def _keep_records(self, eids: Sequence[str]) -> None:
        """Write the records and list entries of ``eids`` again as they are, without an
        expiry (each only if its record did not change meanwhile: who changed it wrote it
        without one)."""
        keys = self.keys
        raws = await self.store.get_many([keys.execution(eid) for eid in eids])
        await asyncio.gather(
            *(
                self.store.batch_if(
                    {keys.execution(eid): raw},
                    [Put(keys.execution(eid), raw), Put(keys.listed(eid), b"")],
                )
                for eid, raw in zip(eids, raws, strict=True)
                if raw is not None
            )
        )

    async def _as_stored(
        self, records: Mapping[str, ExecutionRecord | FinalStatus]
    ) -> dict[str, bytes | None] | None:
        """The bytes stored under each key, if each holds its record still (None otherwise):
        the expected values of a compare-and-set on records read earlier, whatever JSON
        spelling the version that wrote them used."""
        raws = await self.store.get_many(list(records))
        stored = dict(zip(records, raws, strict=True))
        for key, record in records.items():
            raw = stored[key]
            if raw is None or type(record).from_bytes(raw) != record:
                return None
        return stored

    async def hold_leadership(self, role: str, owner: str, ttl: float) -> bool:
        """Take or renew the leader lease of ``role`` for ``ttl`` seconds; False if another
        owner holds it."""
        key, me = self.keys.leader(role), owner.encode()
        if await self.store.set_if_absent(key, me, ttl=ttl):
            return True
        return await self.store.compare_and_set(key, me, me, ttl=ttl)

    async def give_up_leadership(self, role: str, owner: str) -> None:
        key = self.keys.leader(role)
        await self.store.batch_if({key: owner.encode()}, [Delete(key)])

    async def touch_worker(self, worker_id: str, ttl: float, free_slots: int = 0) -> None:
        """Write or renew a worker's liveness key for ``ttl`` seconds, with the number of its
        slots that were free (a hint for ``distributed.doorbell``)."""
        await self.store.put(self.keys.worker(worker_id), b"%d" % free_slots, ttl=ttl)

    async def forget_worker(self, worker_id: str) -> None:
        await self.store.delete(self.keys.worker(worker_id))

    async def live_workers(self, worker_ids: Sequence[str]) -> set[str]:
        """Those of ``worker_ids`` whose liveness key is present, in one round trip."""
        raws = await self.store.get_many([self.keys.worker(w) for w in worker_ids])
        return {w for w, raw in zip(worker_ids, raws, strict=True) if raw is not None}

    async def free_slots(self) -> dict[str, int]:
        """The live workers of every process (their liveness key is present), with the number
        of free slots each last reported (0 when it reported none or it does not parse)."""
        prefix = self.keys.worker_index()
        return {key.removeprefix(prefix): _count(raw) async for key, raw in self.store.scan(prefix)}

    async def ring(self, worker_id: str, message: bytes) -> None:
        """Offer a worker tasks (``distributed.doorbell``), heard if it listens (``rings``)."""
        await self.store.publish(self.keys.doorbell(worker_id), message)

    async def rings(self, worker_id: str) -> AsyncIterator[bytes]:
        """The messages ``ring`` sends ``worker_id`` from now on, from every process."""
        async for message in self.store.listen(self.keys.doorbell(worker_id)):
            yield message

    def _agenda_puts(self, eid: str, node_ids: Iterable[str], now: float) -> list[Put]:
        return [
            Put(
                self.keys.agenda(eid, node),
                AgendaEntry(execution_id=eid, node_id=node, since=now).to_bytes(),
            )
            for node in node_ids
        ]

    def _deadline_puts(self, record: ExecutionRecord) -> list[Put]:
        deadline = record.deadline
        if deadline is None:
            return []
        return [Put(self.keys.deadline(record.execution_id), repr(deadline).encode())]

    async def _expire_execution(self, eid: str, ttl: float) -> None:
        """Give every key of the execution ``ttl``: its records under two prefixes
        (``expire_prefix``) and its index entries, together (one round trip on Redis, whose
        client sends the calls of one turn as a pipeline; was: the keys listed by two scans,
        then one ``expire`` each, ~35 for ten steps)."""
        singletons = (self.store.expire(key, ttl) for key in self._singletons(eid))
        await asyncio.gather(*self._expire_prefixes(eid, ttl), *singletons)

    def _expire_prefixes(self, eid: str, ttl: float | None) -> list[Awaitable[int]]:
        """Calls that make the records of the execution under its two prefixes expire ``ttl``
        seconds from now (None: never)."""
        keys, store = self.keys, self.store
        return [
            store.expire_prefix(keys.execution(eid) + "/", ttl),
            store.expire_prefix(keys.agenda_of(eid), ttl),
        ]

    async def _execution_keys(self, eid: str) -> AsyncIterator[str]:
        for key in self._singletons(eid):
            yield key
        async for key, _ in self.store.scan(self.keys.execution(eid) + "/"):
            yield key
        async for key, _ in self.store.scan(self.keys.agenda_of(eid)):
            yield key

    def _singletons(self, eid: str) -> Iterable[str]:
        keys = self.keys
        return (keys.execution(eid), keys.active(eid), keys.listed(eid), keys.deadline(eid))


def _join_counts(joins: Sequence[str], raws: Sequence[bytes | None]) -> dict[str, JoinCount]:
    """The counters of ``joins`` from their raw values (arrived, taken for each in turn)."""
    counts = [0 if raw is None else int(raw) for raw in raws]
    return {join: JoinCount(*counts[2 * i : 2 * i + 2]) for i, join in enumerate(joins)}


def _count(raw: bytes) -> int:
    """A worker's free slots from its liveness key (written by another process: trust nothing)."""
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


def _generation_put(keys: Keys, record: ExecutionRecord) -> Put:
    return Put(keys.generation(record.execution_id), str(record.generation).encode())


def _versions(
    node_ids: Sequence[str], raws: Sequence[bytes | None]
) -> dict[str, VersionedStep | None]:
    """The step records read for ``node_ids``, by node id (None: not started)."""
    return {node: _versioned(raw) for node, raw in zip(node_ids, raws, strict=True)}


def _versioned(raw: bytes | None) -> VersionedStep | None:
    return None if raw is None else VersionedStep(raw, StepRecord.from_bytes(raw))
