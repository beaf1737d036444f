"""``MetricsCollector``: what the engine's hooks record into; ``PrometheusCollector`` implements it.

A collector records by catalog name (``metrics.names``): ``inc`` a counter, ``observe`` a
histogram, ``set`` a gauge, ``set_function`` to have a gauge read at every scrape (a state the
caller keeps anyway, such as steps in flight, costs nothing between scrapes), or
``replace_series`` to set a labelled gauge to exactly the given series (a partition this process
no longer consumes disappears). ``render`` is the scrape body. Recording is thread-safe and
cheap: the event loop records, an HTTP thread renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, Protocol, TypeVar, cast, runtime_checkable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .errors import InvalidLabels, MetricsConflict, UnknownMetric
from .names import METRICS, MetricSpec

__all__ = ["Labels", "MetricsCollector", "PrometheusCollector"]

Labels = Mapping[str, str]


@runtime_checkable
class MetricsCollector(Protocol):
    """Records metrics of the catalog by name and renders them for a scrape."""

    content_type: str

    def inc(self, name: str, labels: Labels | None = None, amount: float = 1.0) -> None:
        """Add ``amount`` to a counter."""

    def observe(self, name: str, value: float, labels: Labels | None = None) -> None:
        """Record one observation in a histogram."""

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        """Set a gauge."""

    def set_function(
        self, name: str, read: Callable[[], float], labels: Labels | None = None
    ) -> None:
        """Read a gauge from ``read`` at every scrape, on the scraping thread (so ``read`` must
        be a quick, thread-safe read, such as an int attribute)."""

    def replace_series(self, name: str, series: Iterable[tuple[Labels, float]]) -> None:
        """Set a labelled gauge to exactly ``series``; its other label sets are removed."""

    def render(self) -> bytes:
        """The current values in the exposition format named by ``content_type``."""


_M = TypeVar("_M", Counter, Gauge, Histogram)


class PrometheusCollector:
    """A ``MetricsCollector`` on prometheus-client, with every metric of the catalog.

    ``registry``: where the metrics live; by default a new ``CollectorRegistry`` of its own, so
    two collectors (two engines) in one process never clash. Pass
    ``prometheus_client.REGISTRY`` to export them next to the process's other metrics.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        catalog: Iterable[MetricSpec] = METRICS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.specs = {spec.name: spec for spec in catalog}
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        try:
            for spec in self.specs.values():
                self._register(spec)
        except MetricsConflict:
            self._unregister()  # leave the registry as it was
            raise
        self._series: dict[str, set[tuple[str, ...]]] = {}
        self._children: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def inc(self, name: str, labels: Labels | None = None, amount: float = 1.0) -> None:
        counter = self._counters.get(name) or self._missing(name, "counter")
        self._child(counter, name, labels).inc(amount)

    def observe(self, name: str, value: float, labels: Labels | None = None) -> None:
        histogram = self._histograms.get(name) or self._missing(name, "histogram")
        self._child(histogram, name, labels).observe(value)

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        gauge = self._gauges.get(name) or self._missing(name, "gauge")
        self._child(gauge, name, labels).set(value)

    def set_function(
        self, name: str, read: Callable[[], float], labels: Labels | None = None
    ) -> None:
        gauge = self._gauges.get(name) or self._missing(name, "gauge")
        self._child(gauge, name, labels).set_function(read)

    def replace_series(self, name: str, series: Iterable[tuple[Labels, float]]) -> None:
        gauge = self._gauges.get(name) or self._missing(name, "gauge")
        kept: set[tuple[str, ...]] = set()
        for labels, value in series:
            values = _label_values(self.specs[name], labels)
            gauge.labels(*values).set(value)
            kept.add(values)
        for stale in self._series.get(name, set()) - kept:
            gauge.remove(*stale)
        self._series[name] = kept
        self._children = {k: c for k, c in self._children.items() if k[0] != name}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _register(self, spec: MetricSpec) -> None:
        name, registry = spec.name, self.registry
        try:
            if spec.kind == "counter":
                self._counters[name] = Counter(name, spec.help, spec.labels, registry=registry)
            elif spec.kind == "gauge":
                self._gauges[name] = Gauge(name, spec.help, spec.labels, registry=registry)
            else:
                buckets = spec.buckets or Histogram.DEFAULT_BUCKETS
                self._histograms[name] = Histogram(
                    name, spec.help, spec.labels, registry=registry, buckets=buckets
                )
        except ValueError as exc:  # prometheus-client: "Duplicated timeseries in ..."
            raise MetricsConflict(f"{name}: {exc}") from exc

    def _unregister(self) -> None:
        for metric in (
            *self._counters.values(),
            *self._gauges.values(),
            *self._histograms.values(),
        ):
            self.registry.unregister(metric)

    def _child(self, metric: _M, name: str, labels: Labels | None) -> _M:
        """The metric itself when it takes no labels, else its child for ``labels`` (checked
        once, then cached: recording is on the engine's hot path)."""
        if not labels and not self.specs[name].labels:
            return metric
        key = (name, tuple((labels or {}).items()))
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*_label_values(self.specs[name], labels or {}))
            self._children[key] = child
        return cast(_M, child)

    def _missing(self, name: str, kind: str) -> NoReturn:
        spec = self.specs.get(name)
        raise UnknownMetric(name, kind=kind, actual=spec.kind if spec else None)


def _label_values(spec: MetricSpec, labels: Labels) -> tuple[str, ...]:
    """The label values in the spec's order; ``InvalidLabels`` unless they fit the spec."""
    if set(labels) != set(spec.labels):
        raise InvalidLabels(f"{spec.name} takes labels {list(spec.labels)}, not {sorted(labels)}")
    for label, allowed in spec.allowed.items():
        if labels[label] not in allowed:
            raise InvalidLabels(
                f"{spec.name}: {label}={labels[label]!r} is not one of {list(allowed)}"
            )
    return tuple(str(labels[label]) for label in spec.labels)
