"""Errors raised by the ``metrics`` package.

Every error ``metrics`` raises derives from :class:`MetricsError`; errors of prometheus-client and
of the socket layer are translated at the edge (``raise ... from exc``)::

    MetricsError                base class; catch this to handle any metrics failure
    ├── UnknownMetric           a name that is not in the catalog (``metrics.names``)
    ├── InvalidLabels           label names other than the metric's, or a value outside a
    │                           label's fixed set (label values are bounded, never ids)
    ├── MetricsConflict         the registry already holds metrics of these names (two
    │                           collectors were given one registry)
    └── MetricsServerError      the ``/metrics`` endpoint could not start (port in use, bad host)

A negative amount for a counter raises the built-in ``ValueError``, as prometheus-client does.
"""

from __future__ import annotations

__all__ = [
    "InvalidLabels",
    "MetricsConflict",
    "MetricsError",
    "MetricsServerError",
    "UnknownMetric",
]


class MetricsError(Exception):
    """Base class of every error raised by ``metrics``."""


class UnknownMetric(MetricsError):
    """The name is not a metric of the catalog."""

    def __init__(self, name: str, *, kind: str = "metric", actual: str | None = None) -> None:
        found = f"it is a {actual}" if actual else "see metrics.names.METRICS"
        super().__init__(f"no {kind} named {name!r} ({found})")
        self.name = name


class InvalidLabels(MetricsError):
    """The labels do not match the metric's label names, or a value is not allowed."""


class MetricsConflict(MetricsError):
    """The registry already holds a metric of one of the catalog's names."""


class MetricsServerError(MetricsError):
    """The ``/metrics`` HTTP endpoint could not be started."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot serve /metrics on {host}:{port}: {reason}")
        self.host = host
        self.port = port
