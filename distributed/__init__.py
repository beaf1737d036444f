"""Durable, decentralised execution of Flowloom workflows on a store and a broker.

``DistributedEngine`` submits and controls executions; ``Worker``/``WorkerPool`` run their steps;
``Runtime`` wires both to a store and a broker from URLs (``Runtime.embedded`` is the zero-service
default: LevelDB + the in-process broker). Steps run at least once, state transitions exactly once.
``RecoveryManager`` recovers failed executions and keeps the others moving; ``Hooks`` observe them.
``InstrumentedEngine`` wraps an engine so that its runtime exports Prometheus metrics (the hooks
adapter ``MetricsHooks``; the collector and ``/metrics`` endpoint are in ``metrics``).
``DistributedEngine.events`` reads an execution's event log (``ExecutionEvent``), which the
``EventRecorder`` hook writes.
``RetryPolicy`` and ``retry_with_policy`` are orchestration's, re-exported here.
"""

from orchestration import (
    RetryPolicy,
    default_retry_policy,
    retry_with_policy,
    retry_with_policy_sync,
)

from .context import RuntimeContext
from .engine import DistributedEngine, EngineConfig, default_engine_config
from .errors import (
    DistributedError,
    ExecutionExists,
    ExecutionFinal,
    ExecutionNotFound,
    IllegalTransition,
    InvalidSettings,
    LeaseLost,
    NotRecoverable,
    SubflowFailed,
    UndecodableTask,
    WaitTimeout,
)
from .events import EventRecorder, ExecutionEvent
from .hooks import (
    DeadLettered,
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    Hooks,
    HookSet,
    LeaseExpired,
    RetryScheduled,
    StepFinished,
    StepSkipped,
    StepStarted,
    WorkerStarted,
    WorkerStopped,
)
from .instrumented import InstrumentedEngine, MetricsHooks
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
from .queue import MQTaskQueue, MQTaskQueueConfig, TaskQueue, default_mq_task_queue_config
from .recovery import RecoveryConfig, RecoveryManager, SweepReport
from .remote import DistributedParallelStep, RemoteStep
from .runtime import Runtime
from .steps import StepExecutor, StepOutcome
from .worker import Worker, WorkerConfig

__all__ = [
    "DeadLettered",
    "DistributedEngine",
    "DistributedError",
    "DistributedParallelStep",
    "EngineConfig",
    "EventRecorder",
    "ExecutionControl",
    "ExecutionEvent",
    "ExecutionExists",
    "ExecutionFinal",
    "ExecutionFinished",
    "ExecutionNotFound",
    "ExecutionOptions",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "ExecutionSubmitted",
    "FinalStatus",
    "HookSet",
    "Hooks",
    "IllegalTransition",
    "InstrumentedEngine",
    "InvalidSettings",
    "KVPersistence",
    "LeaseExpired",
    "LeaseLost",
    "MQTaskQueue",
    "MQTaskQueueConfig",
    "MetricsHooks",
    "NotRecoverable",
    "PoolConfig",
    "RecoveryConfig",
    "RecoveryManager",
    "RemoteStep",
    "RetryPolicy",
    "RetryScheduled",
    "Runtime",
    "RuntimeContext",
    "StepExecutor",
    "StepFinished",
    "StepOutcome",
    "StepRecord",
    "StepSkipped",
    "StepStarted",
    "SubflowFailed",
    "SweepReport",
    "Task",
    "TaskQueue",
    "TaskResult",
    "UndecodableTask",
    "WaitTimeout",
    "Worker",
    "WorkerConfig",
    "WorkerPool",
    "WorkerStarted",
    "WorkerStopped",
    "WorkflowPersistence",
    "default_engine_config",
    "default_mq_task_queue_config",
    "default_retry_policy",
    "retry_with_policy",
    "retry_with_policy_sync",
]
