"""``to_json_value``: the value as JSON reads it back, whichever path it takes (scalars and empty
containers skip the write and parse)."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest

from orchestration.errors import InvalidJSONValue
from orchestration.jsonvalue import to_json_value


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**70,
    1.5,
    -0.0,
    "",
    "plain",
    "non-ASCII: é€ 😀",
    [],
    {},
    Colour.RED,
    Name("subclass"),
    (1, "a"),
    {1: [2, {"x": None}]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_comes_back_as_json_reads_it(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    found = to_json_value(value)
    assert found == expected and type(found) is type(expected)


@pytest.mark.parametrize("value", [[], {}])
def test_an_empty_container_comes_back_as_a_new_one(value: Any) -> None:
    assert to_json_value(value) is not value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "not JSON"),
        (float("inf"), "not JSON"),
        ("lone \ud800", "lone surrogate"),
        (10**5000, "not JSON"),
    ],
    ids=["nan", "infinity", "surrogate", "huge int"],
)
def test_a_scalar_json_cannot_keep_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(InvalidJSONValue, match=problem):
        to_json_value(value)
