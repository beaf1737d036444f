"""Scraping ``/metrics`` over real HTTP and reading it with prometheus-client's own parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def scrape(url: str) -> Samples:
    """GET ``url`` (blocking: call it from a thread when a loop runs) and parse the body."""
    return parse(fetch(url))


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The sample's value, or None when the scrape does not have it."""
    return samples.get((name, frozenset((labels or {}).items())))
