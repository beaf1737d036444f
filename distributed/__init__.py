"""Durable, decentralised execution of Flowloom workflows on a store and a broker.

``DistributedEngine`` submits and controls executions; ``Worker``/``WorkerPool`` run their steps;
``Runtime`` wires both to a store and a broker from URLs (``Runtime.embedded`` is the zero-service
default: LevelDB + the in-process broker). Steps run at least once, state transitions exactly once.
"""

from .engine import DistributedEngine, EngineConfig
from .errors import (
    DistributedError,
    ExecutionExists,
    ExecutionFinal,
    ExecutionNotFound,
    LeaseLost,
    SubflowFailed,
    UndecodableTask,
    WaitTimeout,
)
from .models import (
    ExecutionOptions,
    ExecutionRecord,
    ExecutionSnapshot,
    FinalStatus,
    StepRecord,
    Task,
    TaskResult,
)
from .persistence import KVPersistence, WorkflowPersistence
from .pool import PoolConfig, WorkerPool
from .queue import MQTaskQueue, TaskQueue
from .reaper import Reaper
from .remote import DistributedParallelStep, RemoteStep
from .runtime import Runtime
from .steps import StepExecutor, StepOutcome
from .worker import Worker, WorkerConfig

__all__ = [
    "DistributedEngine",
    "DistributedError",
    "DistributedParallelStep",
    "EngineConfig",
    "ExecutionExists",
    "ExecutionFinal",
    "ExecutionNotFound",
    "ExecutionOptions",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "FinalStatus",
    "KVPersistence",
    "LeaseLost",
    "MQTaskQueue",
    "PoolConfig",
    "Reaper",
    "RemoteStep",
    "Runtime",
    "StepExecutor",
    "StepOutcome",
    "StepRecord",
    "SubflowFailed",
    "Task",
    "TaskQueue",
    "TaskResult",
    "UndecodableTask",
    "WaitTimeout",
    "Worker",
    "WorkerConfig",
    "WorkerPool",
    "WorkflowPersistence",
]
