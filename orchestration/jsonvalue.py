"""The JSON value type and the one check every step result goes through."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSON", "canonical_json", "to_json_value"]

JSON = Any
"""A JSON-serialisable value: None, bool, int, float, str, list of JSON, dict of str -> JSON."""


def to_json_value(value: Any) -> JSON:
    """Return ``value`` as it reads back from JSON (tuples become lists, keys strings).

    Raises ``TypeError``/``ValueError`` when ``value`` cannot be encoded. Both engines store
    this normal form, so a local run and a distributed run see identical values.
    """
    return json.loads(json.dumps(value, allow_nan=False))


def canonical_json(value: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces) used for content hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
