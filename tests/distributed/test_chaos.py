"""Chaos, CI-sized: three ``flowloom worker`` processes on Redis + the Kafka-protocol broker run
100 mixed executions (chain, diamond, fan-out + join, router + any-join) while a random worker
is SIGKILLed every 2 s and replaced. Every execution must end ``completed`` exactly once with
every step result in place, no join may fire twice, no committed step may run again; the test
prints the duplicates per 1,000 steps and the recovery times it saw.

The long run with a Redis restart and a broker pause is ``python -m benchmarks.chaos``; both
use ``chaos_support``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chaos_support import (
    ChaosConfig,
    WorkerFleet,
    delete_namespace,
    run_chaos,
    unique_namespace,
)
from support import KAFKA_QUERY, require_kafka, require_redis

# Tansu: short group timeouts and fetch long-poll (see scenario_support.TANSU_OPTIONS).
TANSU_QUERY = f"?{KAFKA_QUERY}"
CONFIG = ChaosConfig(workers=3, executions=100, kill_every=2.0, chaos_for=18.0, finish_within=90.0)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[WorkerFleet]:
    redis_url = require_redis()
    broker_url = f"kafka://{require_kafka()}{TANSU_QUERY}"
    namespace = unique_namespace("chaos")
    workers = WorkerFleet(redis_url, broker_url, namespace, tmp_path, ("--lease-ttl", "2"))
    yield workers
    workers.stop()
    await delete_namespace(redis_url, namespace)


@pytest.mark.timeout(240)
async def test_a_hundred_executions_survive_a_sigkill_every_two_seconds(
    fleet: WorkerFleet,
) -> None:
    report = await run_chaos(CONFIG, fleet, progress=print)
    print(report.summary())

    assert report.kills >= 5, f"the kill loop hardly ran: {report.summary()}"
    assert report.unfinished == 0, report.summary()
    assert dict(report.statuses) == {"completed": CONFIG.executions}, report.summary()
    assert report.lost == [], report.summary()
    assert report.double_joins == [], report.summary()
    assert report.reruns_after_commit == [], report.summary()
    assert report.unrecovered == [], report.summary()
