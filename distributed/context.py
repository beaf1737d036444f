"""``RuntimeContext``: what every distributed component shares, built once and handed down.

The persistence, the task queue, the local engine (definitions and node types), the lifecycle
hooks, the clock, the workers of this process that take tasks eagerly (``dispatch``, see
:mod:`distributed.dispatch`), the waiters for final statuses (``finals``, see
:mod:`distributed.final_watch`), the doorbells of other processes' workers (``doorbells``, see
:mod:`distributed.doorbell`), and the definitions its workers ran executions on (``recent``,
see :mod:`distributed.recent`). ``build`` also installs the event log's ``EventRecorder`` hook
(always on over a ``KVPersistence``; ``events=False`` leaves it out), see
:mod:`distributed.events`. Components take a context instead of building each other's
collaborators; ``context.scheduler`` is the one ``Scheduler`` they all use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from orchestration import Engine

from .dispatch import LocalDispatch
from .doorbell import Doorbells
from .events import EventRecorder
from .final_watch import FinalWatch
from .hooks import Hooks, HookSet
from .persistence import KVPersistence, WorkflowPersistence
from .queue import TaskQueue
from .recent import RecentDefinitions
from .scheduler import Scheduler

__all__ = ["RuntimeContext"]


@dataclass(frozen=True, kw_only=True)
class RuntimeContext:
    persistence: WorkflowPersistence
    queue: TaskQueue
    engine: Engine
    hooks: HookSet = field(default_factory=HookSet)
    clock: Callable[[], float] = time.time
    dispatch: LocalDispatch = field(default_factory=LocalDispatch)
    recent: RecentDefinitions = field(default_factory=RecentDefinitions)

    def __post_init__(self) -> None:
        self.hooks.add(self.finals)  # wakes the waiters (``DistributedEngine.wait``)

    @classmethod
    def build(
        cls,
        engine: Engine,
        queue: TaskQueue,
        persistence: WorkflowPersistence,
        hooks: Hooks | None = None,
        *,
        events: bool = True,
    ) -> RuntimeContext:
        """A context with ``hooks`` (one hook, or a ``HookSet``) installed, and the event
        log's recorder unless ``events=False`` (or the hook set has one already)."""
        hook_set = (
            hooks if isinstance(hooks, HookSet) else HookSet([] if hooks is None else [hooks])
        )
        has_recorder = any(isinstance(hook, EventRecorder) for hook in hook_set.hooks)
        if events and not has_recorder and isinstance(persistence, KVPersistence):
            recorder = EventRecorder(
                persistence.store, persistence.keys, retention=persistence.retention
            )
            hook_set.add(recorder)
        return cls(persistence=persistence, queue=queue, engine=engine, hooks=hook_set)

    async def flush_events(self) -> None:
        """Append the events the event log's recorder still holds (before closing)."""
        for hook in self.hooks.hooks:
            if isinstance(hook, EventRecorder):
                await hook.flush()

    @cached_property
    def scheduler(self) -> Scheduler:
        return Scheduler(self)

    @cached_property
    def doorbells(self) -> Doorbells:
        return Doorbells(self.persistence, self.dispatch)

    @cached_property
    def finals(self) -> FinalWatch:
        return FinalWatch(self.persistence)
