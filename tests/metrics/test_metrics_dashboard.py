"""The Grafana dashboard and the documented table agree with the catalog of metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from metrics import METRICS, MetricSpec

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "flowloom.json"
DOCS = ROOT / "docs" / "metrics.md"
README = ROOT / "README.md"
SPECS = {spec.name: spec for spec in METRICS}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}
PROMETHEUS_LABELS = {"le", "instance", "job"}

# The panels the issue asks for, by a word of their title.
REQUIRED_PANELS = (
    "Throughput",
    "Step latency percentiles",
    "Dispatch latency",
    "Failures by reason",
    "Queue lag",
    "In flight",
    "Lease expiries",
)


def panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found: list[dict[str, Any]] = dashboard["panels"]
    return found


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def base(series: str) -> str:
    spec = spec_of(series)
    assert spec is not None, series
    return spec.name


def spec_of(series: str) -> MetricSpec | None:
    """The catalog metric a series name belongs to (``x_bucket`` -> histogram ``x``)."""
    for spec in METRICS:
        if any(series == spec.name + suffix for suffix in SUFFIXES[spec.kind]):
            return spec
    return None


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names matched) of every selector of a PromQL expression."""
    text = re.sub(r'"[^"]*"', '""', expr)  # string literals: "$workflow", "failed|retry"
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors: [$__rate_interval]
    text = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", text)  # grouping clauses
    found = []
    for match in re.finditer(r"([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, braces, call = match.groups()
        if call and not braces:
            continue  # a function or an aggregation: sum(...), rate(...)
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", braces or ""))
        found.append((name, labels))
    return found


def test_the_dashboard_is_valid_grafana_json_with_unique_panels_and_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "Flowloom" and dashboard["uid"] == "flowloom"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["type"] in {"stat", "timeseries"}
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("expr", expressions())
def test_every_query_is_balanced_and_asks_for_metrics_and_labels_that_exist(expr: str) -> None:
    for opening, closing in ("()", "{}", "[]"):
        assert expr.count(opening) == expr.count(closing), expr
    found = selectors(expr)
    assert found, f"no metric in {expr}"
    for series, labels in found:
        spec = spec_of(series)
        assert spec is not None, f"{series} is not a metric of the catalog ({expr})"
        assert labels <= set(spec.labels) | PROMETHEUS_LABELS, (series, labels)
    grouping = re.findall(r"by \(([^)]*)\)", expr)
    grouped = {label.strip() for labels in grouping for label in labels.split(",")}
    known = {label for series, _ in found for label in SPECS[base(series)].labels}
    assert grouped <= known | PROMETHEUS_LABELS, (expr, grouped)


def test_the_selector_reader_finds_what_a_query_names() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, step) (rate(step_duration_seconds_bucket"
        '{workflow=~"$workflow", outcome="completed"}[$__rate_interval]))) / sum(workers)'
    )
    assert selectors(expr) == [
        ("step_duration_seconds_bucket", {"workflow", "outcome"}),
        ("workers", set()),
    ]


def test_the_dashboard_has_the_panels_an_operator_needs_and_uses_every_metric() -> None:
    titles = [panel["title"] for panel in panels()]
    for required in REQUIRED_PANELS:
        assert any(title.startswith(required) for title in titles), required
    used = {base(series) for expr in expressions() for series, _ in selectors(expr)}
    assert used == set(SPECS)


def documented_rows() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, type, labels) of each row of the metric table in docs/metrics.md."""
    rows = []
    for line in DOCS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1] in ("counter", "gauge", "histogram"):
            labels = tuple(re.findall(r"`(\w+)`", cells[2]))
            rows.append((cells[0].strip("`"), cells[1], labels))
    return rows


def test_the_documented_table_is_the_catalog() -> None:
    assert documented_rows() == [(spec.name, spec.kind, spec.labels) for spec in METRICS]


def test_the_readme_has_a_monitoring_section_with_the_scrape_config() -> None:
    text = README.read_text()
    assert text.index("## Monitoring") < text.index("## Running pieces by hand")
    section = text[text.index("## Monitoring") : text.index("## Running pieces by hand")]
    for needed in ("scrape_configs", "docs/metrics.md", "deploy/grafana/flowloom.json"):
        assert needed in section, needed
