"""``serve_metrics``: ``GET /metrics`` over real HTTP, on loopback unless told otherwise; one port
per process, so several worker processes on one host are scraped side by side and add up."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics_test_support import fetch, scrape, value

from metrics import DEFAULT_PORT, MetricsServerError, PrometheusCollector, serve_metrics
from metrics.names import EXECUTION_STARTED, WORKERS

ROOT = Path(__file__).resolve().parents[2]

# A worker process, as far as metrics go: its own collector and its own port (0: any free one).
CHILD = """
import sys
from metrics import PrometheusCollector, serve_metrics
collector = PrometheusCollector()
collector.inc("workflow_execution_started_total", {"workflow": "etl"}, amount=int(sys.argv[1]))
collector.set("workers", 2)
server = serve_metrics(collector, port=0)
print(server.port, flush=True)
sys.stdin.read()  # serve until the test closes our stdin
server.close()
"""


@pytest.fixture
def collector() -> PrometheusCollector:
    collector = PrometheusCollector()
    collector.inc(EXECUTION_STARTED, {"workflow": "etl"})
    return collector


def test_metrics_are_served_on_loopback_and_parse_with_prometheus_clients_parser(
    collector: PrometheusCollector,
) -> None:
    with serve_metrics(collector, port=0) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert value(scrape(server.url), EXECUTION_STARTED, {"workflow": "etl"}) == 1
        collector.inc(EXECUTION_STARTED, {"workflow": "etl"})
        assert value(scrape(server.url), EXECUTION_STARTED, {"workflow": "etl"}) == 2


def test_the_default_port_is_9464() -> None:
    assert DEFAULT_PORT == 9464
    assert serve_metrics.__defaults__ == (9464, "127.0.0.1")


def test_other_paths_are_not_found(collector: PrometheusCollector) -> None:
    with (
        serve_metrics(collector, port=0) as server,
        pytest.raises(urllib.error.HTTPError) as caught,
    ):
        fetch(server.url.replace("/metrics", "/admin"))
    assert caught.value.code == 404


def test_a_port_in_use_is_a_clear_error_and_closing_frees_it(
    collector: PrometheusCollector,
) -> None:
    server = serve_metrics(collector, port=0)
    in_use = f"127.0.0.1:{server.port}: Address already in use"
    with pytest.raises(MetricsServerError, match=in_use):
        serve_metrics(PrometheusCollector(), port=server.port)
    server.close()
    server.close()  # idempotent
    again = serve_metrics(collector, port=server.port)
    again.close()


def test_two_collectors_of_one_process_serve_on_two_ports() -> None:
    first, second = PrometheusCollector(), PrometheusCollector()
    first.set(WORKERS, 1)
    second.set(WORKERS, 3)
    with serve_metrics(first, port=0) as one, serve_metrics(second, port=0) as two:
        assert one.port != two.port
        assert value(scrape(one.url), WORKERS) == 1
        assert value(scrape(two.url), WORKERS) == 3


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for count in (3, 4)
    ]
    yield started
    for child in started:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def test_two_worker_processes_on_one_host_serve_on_two_ports_and_add_up(
    children: list[subprocess.Popen[str]],
) -> None:
    ports = []
    for child in children:
        assert child.stdout is not None
        ports.append(int(child.stdout.readline()))
    assert len(set(ports)) == 2
    scrapes = [scrape(f"http://127.0.0.1:{port}/metrics") for port in ports]
    started = [value(s, EXECUTION_STARTED, {"workflow": "etl"}) or 0 for s in scrapes]
    assert sum(started) == 7
    assert sum(value(s, WORKERS) or 0 for s in scrapes) == 4
