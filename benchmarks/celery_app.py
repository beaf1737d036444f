"""The Celery side of the comparison: one no-op task, Redis as broker and result backend.

Worker processes load it with ``celery -A benchmarks.celery_app worker``. The Redis URL (a
database of its own, default ``/15``) and the queue come from ``FLOWLOOM_BENCH_CELERY_URL`` and
``FLOWLOOM_BENCH_CELERY_QUEUE``, so the client and its workers agree.
"""

from __future__ import annotations

import os

from celery import Celery

__all__ = ["QUEUE", "URL", "app", "noop"]

URL = os.environ.get("FLOWLOOM_BENCH_CELERY_URL", "redis://127.0.0.1:6379/15")
QUEUE = os.environ.get("FLOWLOOM_BENCH_CELERY_QUEUE", "flowloom-bench")

app = Celery("flowloom_bench", broker=URL, backend=URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: every measured cost is Celery's (broker, result backend, chord counter)."""
    return None
