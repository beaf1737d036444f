"""Logging for the CLI: plain or JSON lines on stderr, and hooks that say what a worker does
(one line per step start and finish, lease expiry, dead letter, final status, recovery)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from ..hooks import (
    DeadLettered,
    ExecutionControl,
    ExecutionFinished,
    Hooks,
    LeaseExpired,
    StepFinished,
    StepStarted,
)

__all__ = ["JSONFormatter", "WorkerLog", "setup_logging"]

log = logging.getLogger("flowloom.worker")
_EXTRAS = ("execution_id", "step_id", "worker_id", "pid")
_TEXT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, pid and structured extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update({k: getattr(record, k) for k in _EXTRAS if hasattr(record, k)})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str, fmt: str) -> None:
    """Send log records at ``level`` and above to stderr, as ``fmt`` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JSONFormatter() if fmt == "json" else logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":  # the Kafka client narrates connections; commands report failures
        logging.getLogger("aiokafka").setLevel(logging.WARNING if level == "INFO" else 100)


class WorkerLog(Hooks):
    """Lifecycle hooks that log what this worker process does."""

    def step_started(self, event: StepStarted) -> None:
        log.info(
            "step %s/%s started (attempt %d, waited %.2fs)",
            event.execution_id,
            event.step_id,
            event.attempt,
            event.dispatch_latency,
            extra=_ids(event.execution_id, event.step_id),
        )

    def step_finished(self, event: StepFinished) -> None:
        log.info(
            "step %s/%s %s in %.2fs",
            event.execution_id,
            event.step_id,
            event.outcome,
            event.duration,
            extra=_ids(event.execution_id, event.step_id),
        )

    def lease_expired(self, event: LeaseExpired) -> None:
        log.warning(
            "recovery: step %s/%s of dead worker %s runs again (lease expiry %d)",
            event.execution_id,
            event.step_id,
            event.owner,
            event.expiries,
            extra=_ids(event.execution_id, event.step_id),
        )

    def dead_lettered(self, event: DeadLettered) -> None:
        log.warning("dead letter: %s", event.reason, extra=_ids(event.execution_id, None))

    def execution_final(self, event: ExecutionFinished) -> None:
        log.info(
            "execution %s %s (generation %d)",
            event.execution_id,
            event.status,
            event.generation,
            extra=_ids(event.execution_id, None),
        )

    def execution_control(self, event: ExecutionControl) -> None:
        log.info(
            "execution %s %s",
            event.execution_id,
            event.action,
            extra=_ids(event.execution_id, None),
        )


def _ids(execution_id: str | None, step_id: str | None) -> dict[str, Any]:
    ids = {"execution_id": execution_id, "step_id": step_id}
    return {k: v for k, v in ids.items() if v is not None}
