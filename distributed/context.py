"""``RuntimeContext``: what every distributed component shares, built once and handed down.

The persistence, the task queue, the local engine (definitions and node types), the lifecycle
hooks and the clock. Components take a context instead of building each other's collaborators;
``context.scheduler`` is the one ``Scheduler`` they all use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from orchestration import Engine

from .hooks import Hooks, HookSet
from .persistence import WorkflowPersistence
from .queue import TaskQueue
from .scheduler import Scheduler

__all__ = ["RuntimeContext"]


@dataclass(frozen=True, kw_only=True)
class RuntimeContext:
    persistence: WorkflowPersistence
    queue: TaskQueue
    engine: Engine
    hooks: HookSet = field(default_factory=HookSet)
    clock: Callable[[], float] = time.time

    @classmethod
    def build(
        cls,
        engine: Engine,
        queue: TaskQueue,
        persistence: WorkflowPersistence,
        hooks: Hooks | None = None,
    ) -> RuntimeContext:
        """A context with ``hooks`` (one hook, or a ``HookSet``) installed."""
        hook_set = (
            hooks if isinstance(hooks, HookSet) else HookSet([] if hooks is None else [hooks])
        )
        return cls(persistence=persistence, queue=queue, engine=engine, hooks=hook_set)

    @cached_property
    def scheduler(self) -> Scheduler:
        return Scheduler(self)
