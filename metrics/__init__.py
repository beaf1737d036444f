"""Prometheus metrics for Flowloom: the catalog of names, a collector and the ``/metrics`` endpoint.

    collector = PrometheusCollector()                 # its own CollectorRegistry
    server = serve_metrics(collector, port=9464)      # http://127.0.0.1:9464/metrics
    collector.inc(EXECUTION_STARTED, {"workflow": "etl"})

``metrics`` knows Prometheus and nothing else of Flowloom: the engine feeds it through its
lifecycle hooks (``distributed.InstrumentedEngine``). The names are in ``metrics.names`` and in
the table of ``docs/metrics.md``.
"""

from metrics.collector import Labels, MetricsCollector, PrometheusCollector
from metrics.errors import (
    InvalidLabels,
    MetricsConflict,
    MetricsError,
    MetricsServerError,
    UnknownMetric,
)
from metrics.names import METRICS, MetricSpec
from metrics.server import DEFAULT_PORT, MetricsServer, serve_metrics

__all__ = [
    "DEFAULT_PORT",
    "METRICS",
    "InvalidLabels",
    "Labels",
    "MetricSpec",
    "MetricsCollector",
    "MetricsConflict",
    "MetricsError",
    "MetricsServer",
    "MetricsServerError",
    "PrometheusCollector",
    "UnknownMetric",
    "serve_metrics",
]
