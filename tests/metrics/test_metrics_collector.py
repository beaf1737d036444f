"""``PrometheusCollector``: every metric of the catalog, bounded labels, no clash between two."""

from __future__ import annotations

import pytest
from metrics_test_support import parse, value
from prometheus_client import CollectorRegistry

from metrics import (
    METRICS,
    InvalidLabels,
    MetricsCollector,
    MetricsConflict,
    PrometheusCollector,
    UnknownMetric,
)
from metrics.names import (
    DEAD_LETTERS,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    QUEUE_LAG,
    STEP_DURATION,
    WORKER_SLOTS,
    WORKERS,
)


def render(collector: PrometheusCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse(collector.render().decode())


def test_a_collector_is_a_metrics_collector_exporting_every_metric_of_the_catalog() -> None:
    collector = PrometheusCollector()
    assert isinstance(collector, MetricsCollector)
    text = collector.render().decode()
    for spec in METRICS:
        assert f"# TYPE {spec.name} {spec.kind}" in text, spec.name


def test_counters_histograms_and_gauges_record_what_they_are_given() -> None:
    collector = PrometheusCollector()
    collector.inc(EXECUTION_STARTED, {"workflow": "etl"})
    collector.inc(EXECUTION_STARTED, {"workflow": "etl"}, amount=2)
    labels = {"workflow": "etl", "step": "load", "outcome": "completed"}
    collector.observe(STEP_DURATION, 0.3, labels)
    collector.observe(STEP_DURATION, 7.0, labels)
    collector.set(WORKERS, 3)
    samples = render(collector)
    assert value(samples, EXECUTION_STARTED, {"workflow": "etl"}) == 3
    assert value(samples, "step_duration_seconds_count", labels) == 2
    assert value(samples, "step_duration_seconds_sum", labels) == pytest.approx(7.3)
    assert value(samples, "step_duration_seconds_bucket", {**labels, "le": "0.5"}) == 1
    assert value(samples, "step_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 2
    assert value(samples, WORKERS) == 3


def test_a_gauge_set_to_a_function_is_read_at_every_scrape() -> None:
    collector, state = PrometheusCollector(), {"busy": 1}
    collector.set_function(WORKER_SLOTS, lambda: state["busy"], {"state": "busy"})
    assert value(render(collector), WORKER_SLOTS, {"state": "busy"}) == 1
    state["busy"] = 5
    assert value(render(collector), WORKER_SLOTS, {"state": "busy"}) == 5


def test_replacing_a_gauges_series_drops_the_label_sets_not_given() -> None:
    collector = PrometheusCollector()
    collector.replace_series(QUEUE_LAG, [({"partition": "0"}, 4), ({"partition": "1"}, 2)])
    collector.replace_series(QUEUE_LAG, [({"partition": "1"}, 5)])
    samples = render(collector)
    assert value(samples, QUEUE_LAG, {"partition": "1"}) == 5
    assert value(samples, QUEUE_LAG, {"partition": "0"}) is None


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        (DEAD_LETTERS, {"reason": "unknown execution 'a1b2c3'"}),  # free text, not a reason
        (EXECUTION_COMPLETED, {"workflow": "etl", "status": "exploded"}),
        (EXECUTION_STARTED, {"workflow": "etl", "execution_id": "a1b2c3"}),
        (EXECUTION_STARTED, {}),
    ],
)
def test_labels_outside_a_metrics_bounded_set_are_refused(
    name: str, labels: dict[str, str]
) -> None:
    with pytest.raises(InvalidLabels):
        PrometheusCollector().inc(name, labels)


def test_a_name_outside_the_catalog_or_of_another_kind_is_refused() -> None:
    collector = PrometheusCollector()
    with pytest.raises(UnknownMetric, match="no counter named 'flowloom_made_up_total'"):
        collector.inc("flowloom_made_up_total")
    with pytest.raises(UnknownMetric, match="it is a gauge"):
        collector.inc(WORKER_SLOTS, {"state": "busy"})


def test_two_collectors_in_one_process_do_not_clash() -> None:
    first, second = PrometheusCollector(), PrometheusCollector()
    first.inc(EXECUTION_STARTED, {"workflow": "etl"})
    assert value(render(first), EXECUTION_STARTED, {"workflow": "etl"}) == 1
    assert value(render(second), EXECUTION_STARTED, {"workflow": "etl"}) is None


def test_a_second_collector_on_one_registry_is_a_conflict() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(registry=registry)
    before = {family.name for family in registry.collect()}
    with pytest.raises(MetricsConflict, match=EXECUTION_STARTED):
        PrometheusCollector(registry=registry)
    assert {family.name for family in registry.collect()} == before


def test_a_conflict_part_way_through_the_catalog_registers_nothing() -> None:
    registry = CollectorRegistry()
    clashing = [spec for spec in METRICS if spec.name == WORKERS]
    PrometheusCollector(registry=registry, catalog=clashing)
    with pytest.raises(MetricsConflict):
        PrometheusCollector(registry=registry)
    assert {family.name for family in registry.collect()} == {WORKERS}
