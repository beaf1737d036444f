"""``WorkflowPersistence``: the durable record of executions, built on any ``KVStore``.

``KVPersistence`` keeps the layout of ``distributed.keys``. It implements only storage; the
semantics (leases, joins, completion) live in the scheduler and worker, on these primitives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from store import Delete, KVStore, Put

from .keys import Keys
from .models import ExecutionRecord, FinalStatus, StepRecord

__all__ = ["KVPersistence", "TaskView", "VersionedStep", "WorkflowPersistence"]

_FIRE, _SKIP = "fire", "skip"


@dataclass(frozen=True)
class VersionedStep:
    """A step record with the exact bytes it was read as: the expected value of the next CAS."""

    raw: bytes
    record: StepRecord


@dataclass(frozen=True)
class TaskView:
    """What a worker reads before running a step, fetched in one round trip."""

    record: ExecutionRecord | None
    final: FinalStatus | None
    step: VersionedStep | None
    paused: bool


class WorkflowPersistence(Protocol):
    async def create_execution(
        self, record: ExecutionRecord, start_nodes: Sequence[str]
    ) -> bool: ...
    async def record(self, eid: str) -> ExecutionRecord | None: ...
    async def final(self, eid: str) -> FinalStatus | None: ...
    async def task_view(self, eid: str, node_id: str) -> TaskView: ...
    async def finals(self, eids: Sequence[str]) -> list[FinalStatus | None]: ...
    async def set_final(self, eid: str, final: FinalStatus) -> tuple[FinalStatus, bool]: ...
    async def steps(self, eid: str) -> dict[str, VersionedStep]: ...
    async def step(self, eid: str, node_id: str) -> VersionedStep | None: ...
    async def swap_step(
        self, eid: str, expected: VersionedStep | None, new: StepRecord
    ) -> VersionedStep | None: ...
    async def resolve_edges(self, eid: str, edges: Mapping[str, bool]) -> None: ...
    async def edge_states(self, eid: str, edge_keys: Sequence[str]) -> dict[str, bool]: ...
    async def decide_join(self, eid: str, node_id: str, fire: bool) -> bool: ...
    async def fired_nodes(self, eid: str) -> list[str]: ...
    async def next_seq(self, eid: str) -> int: ...
    async def set_paused(self, eid: str, paused: bool) -> None: ...
    async def is_paused(self, eid: str) -> bool: ...
    def active_executions(self) -> AsyncIterator[str]: ...
    def all_executions(self) -> AsyncIterator[str]: ...
    async def purge(self, eid: str) -> None: ...


class KVPersistence:
    """``WorkflowPersistence`` over a ``KVStore`` (memory, LevelDB or Redis)."""

    def __init__(
        self, store: KVStore, *, namespace: str = "flowloom/", retention: float | None = None
    ):
        self.store = store
        self.keys = Keys(namespace)
        self.retention = retention

    async def create_execution(self, record: ExecutionRecord, start_nodes: Sequence[str]) -> bool:
        """Write the record once (False if the id exists) and mark the start nodes fired."""
        eid = record.execution_id
        if not await self.store.set_if_absent(self.keys.execution(eid), record.to_bytes()):
            return False
        joins = [Put(self.keys.join(eid, node), _FIRE.encode()) for node in start_nodes]
        index = [Put(self.keys.active(eid), b""), Put(self.keys.listed(eid), b"")]
        await self.store.batch([*joins, *index])
        return True

    async def record(self, eid: str) -> ExecutionRecord | None:
        raw = await self.store.get(self.keys.execution(eid))
        return None if raw is None else ExecutionRecord.from_bytes(raw)

    async def final(self, eid: str) -> FinalStatus | None:
        return (await self.finals([eid]))[0]

    async def task_view(self, eid: str, node_id: str) -> TaskView:
        keys = self.keys
        record, final, step, paused = await self.store.get_many(
            [keys.execution(eid), keys.final(eid), keys.step(eid, node_id), keys.paused(eid)]
        )
        return TaskView(
            record=None if record is None else ExecutionRecord.from_bytes(record),
            final=None if final is None else FinalStatus.from_bytes(final),
            step=None if step is None else VersionedStep(step, StepRecord.from_bytes(step)),
            paused=paused is not None,
        )

    async def finals(self, eids: Sequence[str]) -> list[FinalStatus | None]:
        raws = await self.store.get_many([self.keys.final(eid) for eid in eids])
        return [None if raw is None else FinalStatus.from_bytes(raw) for raw in raws]

    async def set_final(self, eid: str, final: FinalStatus) -> tuple[FinalStatus, bool]:
        """First writer wins: return the status in force and whether this call set it."""
        won = await self.store.set_if_absent(self.keys.final(eid), final.to_bytes())
        if won:
            await self.store.delete(self.keys.active(eid))
            if self.retention is not None:
                await self._expire_execution(eid, self.retention)
            return final, True
        current = await self.final(eid)
        assert current is not None  # set_if_absent failed, so the key exists
        return current, False

    async def steps(self, eid: str) -> dict[str, VersionedStep]:
        prefix = self.keys.steps(eid)
        return {
            key.removeprefix(prefix): VersionedStep(raw, StepRecord.from_bytes(raw))
            async for key, raw in self.store.scan(prefix)
        }

    async def step(self, eid: str, node_id: str) -> VersionedStep | None:
        raw = await self.store.get(self.keys.step(eid, node_id))
        return None if raw is None else VersionedStep(raw, StepRecord.from_bytes(raw))

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

    async def resolve_edges(self, eid: str, edges: Mapping[str, bool]) -> None:
        """Resolve each edge once as taken or skipped; a later resolution changes nothing."""
        for edge_key, taken in edges.items():
            await self.store.set_if_absent(self.keys.edge(eid, edge_key), b"1" if taken else b"0")

    async def edge_states(self, eid: str, edge_keys: Sequence[str]) -> dict[str, bool]:
        raws = await self.store.get_many([self.keys.edge(eid, key) for key in edge_keys])
        return {
            key: raw == b"1" for key, raw in zip(edge_keys, raws, strict=True) if raw is not None
        }

    async def decide_join(self, eid: str, node_id: str, fire: bool) -> bool:
        """Record the join decision once; return the decision in force (True = fire)."""
        key = self.keys.join(eid, node_id)
        await self.store.set_if_absent(key, (_FIRE if fire else _SKIP).encode())
        return await self.store.get(key) == _FIRE.encode()

    async def fired_nodes(self, eid: str) -> list[str]:
        prefix = self.keys.joins(eid)
        return [
            key.removeprefix(prefix)
            async for key, raw in self.store.scan(prefix)
            if raw == _FIRE.encode()
        ]

    async def next_seq(self, eid: str) -> int:
        return await self.store.incr(self.keys.seq(eid))

    async def set_paused(self, eid: str, paused: bool) -> None:
        if paused:
            await self.store.put(self.keys.paused(eid), b"1")
        else:
            await self.store.delete(self.keys.paused(eid))

    async def is_paused(self, eid: str) -> bool:
        return await self.store.get(self.keys.paused(eid)) is not None

    async def active_executions(self) -> AsyncIterator[str]:
        prefix = self.keys.active_index()
        async for key, _ in self.store.scan(prefix):
            yield key.removeprefix(prefix)

    async def all_executions(self) -> AsyncIterator[str]:
        prefix = self.keys.all_index()
        async for key, _ in self.store.scan(prefix):
            yield key.removeprefix(prefix)

    async def purge(self, eid: str) -> None:
        """Delete every key of one execution."""
        keys = [key async for key in self._execution_keys(eid)]
        await self.store.batch([Delete(key) for key in keys])

    async def _expire_execution(self, eid: str, ttl: float) -> None:
        async for key in self._execution_keys(eid):
            await self.store.expire(key, ttl)

    async def _execution_keys(self, eid: str) -> AsyncIterator[str]:
        for key in self._singletons(eid):
            yield key
        async for key, _ in self.store.scan(self.keys.execution(eid) + "/"):
            yield key

    def _singletons(self, eid: str) -> Iterable[str]:
        return (self.keys.execution(eid), self.keys.active(eid), self.keys.listed(eid))
