"""The metric catalog: every metric Flowloom exports, its kind, help text and labels.

The names are stable (dashboards and alerts query them) and documented in one table,
``docs/metrics.md``; a test keeps that table, the dashboard and this catalog in step. A name is
written as it appears in a scrape: counters end in ``_total``, histograms also export
``_bucket``, ``_sum`` and ``_count`` series. Label values are bounded: a label either has a
fixed set of values here (``allowed``) or takes a name from a workflow definition (workflow id,
step id); never an execution id or free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEAD_LETTERS",
    "DEAD_LETTER_REASONS",
    "DISPATCH_LATENCY",
    "EXECUTIONS_ACTIVE",
    "EXECUTION_COMPLETED",
    "EXECUTION_STARTED",
    "LEASE_EXPIRED",
    "METRICS",
    "PAUSES",
    "QUEUE_LAG",
    "RECOVERIES",
    "RESUMES",
    "SLOT_STATES",
    "STEPS_IN_FLIGHT",
    "STEP_DURATION",
    "STEP_RETRIES",
    "WORKERS",
    "WORKER_SLOTS",
    "MetricKind",
    "MetricSpec",
]

MetricKind = Literal["counter", "gauge", "histogram"]

EXECUTION_STARTED = "workflow_execution_started_total"
EXECUTION_COMPLETED = "workflow_execution_completed_total"
PAUSES = "workflow_pause_total"
RESUMES = "workflow_resume_total"
RECOVERIES = "workflow_recovered_total"
STEP_DURATION = "step_duration_seconds"
STEP_RETRIES = "step_retries_total"
DISPATCH_LATENCY = "step_dispatch_latency_seconds"
STEPS_IN_FLIGHT = "steps_in_flight"
WORKER_SLOTS = "worker_slots"
WORKERS = "workers"
QUEUE_LAG = "queue_lag"
LEASE_EXPIRED = "lease_expired_total"
DEAD_LETTERS = "dead_letters_total"
EXECUTIONS_ACTIVE = "executions_active"

DEAD_LETTER_REASONS = (
    "undecodable",
    "unknown_execution",
    "unknown_step",
    "delivery_limit",
    "other",
)
SLOT_STATES = ("busy", "idle")

# Steps run from milliseconds (a function) to minutes (an LLM call with retries inside).
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Enqueue -> start: sub-millisecond embedded, tens of ms on Kafka, longer under a backlog.
_DISPATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``name`` as scraped, ``kind``, ``help``, label names, and for a label with a
    fixed set of values, that set (``allowed``); ``buckets`` for a histogram."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    allowed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        EXECUTION_STARTED,
        "counter",
        "Executions submitted (counted by the process that submitted them).",
        ("workflow",),
    ),
    MetricSpec(
        EXECUTION_COMPLETED,
        "counter",
        "Executions that reached a final status, once per execution (and generation) across "
        "the cluster: counted by the writer whose final status won.",
        ("workflow", "status"),
        {"status": ("completed", "failed", "cancelled", "timed_out")},
    ),
    MetricSpec(PAUSES, "counter", "Executions paused."),
    MetricSpec(RESUMES, "counter", "Executions resumed."),
    MetricSpec(RECOVERIES, "counter", "Failed executions re-run as a new generation (recover)."),
    MetricSpec(
        STEP_DURATION,
        "histogram",
        "How long step attempts ran, by outcome (one observation per attempt).",
        ("workflow", "step", "outcome"),
        {
            "outcome": (
                "completed",
                "failed",
                "retry",
                "fallback",
                "waiting",
                "cancelled",
                "lease_lost",
                "released",
            )
        },
        _STEP_BUCKETS,
    ),
    MetricSpec(STEP_RETRIES, "counter", "Failed step attempts scheduled to run again."),
    MetricSpec(
        DISPATCH_LATENCY,
        "histogram",
        "Seconds from a step's task being enqueued to a worker starting it.",
        buckets=_DISPATCH_BUCKETS,
    ),
    MetricSpec(STEPS_IN_FLIGHT, "gauge", "Step attempts running in this process now."),
    MetricSpec(
        WORKER_SLOTS,
        "gauge",
        "Step slots of this process's workers, busy (running a step) or idle.",
        ("state",),
        {"state": SLOT_STATES},
    ),
    MetricSpec(WORKERS, "gauge", "Workers running in this process."),
    MetricSpec(
        QUEUE_LAG,
        "gauge",
        "Tasks of the partitions this process consumes that the worker group has not acked "
        "yet (sampled).",
        ("partition",),
    ),
    MetricSpec(
        LEASE_EXPIRED,
        "counter",
        "Running steps handed back because their worker's lease expired (dead or hung worker).",
    ),
    MetricSpec(
        DEAD_LETTERS,
        "counter",
        "Tasks moved to the dead letters, by reason.",
        ("reason",),
        {"reason": DEAD_LETTER_REASONS},
    ),
    MetricSpec(
        EXECUTIONS_ACTIVE,
        "gauge",
        "Executions without a final status, counted in the store (sampled; the same "
        "cluster-wide number in every process: aggregate with max, not sum).",
    ),
)
