"""The safe condition evaluator: the grammar, and nothing outside it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestration import ConditionError, compile_condition, evaluate

NAMES: dict[str, Any] = {
    "score": 0.8,
    "tier": "gold",
    "tags": ["a", "b"],
    "user": {"name": "Ada", "age": 36, "roles": ["admin"]},
    "flag": True,
    "nothing": None,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("score > 0.5", True),
        ("score >= 0.8 and tier == 'gold'", True),
        ('tier != "gold" or not flag', False),
        ("user.name == 'Ada' and user.age < 40", True),
        ("'admin' in user.roles", True),
        ("'c' not in tags", True),
        ("'Ad' in user.name", True),
        ("tags.1 == 'b'", True),
        ("nothing == null", True),
        ("missing.deeply.nested == null", True),
        ("missing < 3", False),
        ("score in [0.8, 0.9]", True),
        ("(flag and false) or (score > -1)", True),
        ("not not flag", True),
        ("user.age == 36.0", True),
        ("'it\\'s' == \"it's\"", True),
    ],
)
def test_expressions_in_the_grammar_evaluate_as_written(source: str, expected: bool) -> None:
    assert evaluate(source, NAMES) is expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "len(tags)",
        "score + 1 > 0",
        "lambda: 1",
        "[x for x in tags]",
        "tags[0] == 'a'",
        "a = 1",
        "score > ",
        "a == b == c",
        "'unterminated",
        "",
        "   ",
        "score > 0.5; import os",
        "{'a': 1}",
        "x if y else z",
    ],
)
def test_anything_outside_the_grammar_is_rejected(source: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(source)


def test_dunder_names_are_plain_lookups_never_attribute_access() -> None:
    assert evaluate("user.__class__ == null", NAMES)


@given(st.text(max_size=60))
def test_arbitrary_text_either_compiles_or_raises_condition_error(source: str) -> None:
    try:
        condition = compile_condition(source)
    except ConditionError:
        return
    assert isinstance(condition.evaluate(NAMES), bool)


_atoms = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["score", "tier", "user.age", "tags", "flag", "null", "true", "'gold'"]),
)


@given(
    st.recursive(
        _atoms,
        lambda inner: st.one_of(
            st.tuples(
                inner, st.sampled_from(["==", "!=", "<", ">=", "in", "and", "or"]), inner
            ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda s: f"(not {s})"),
        ),
        max_leaves=8,
    )
)
def test_generated_expressions_of_the_grammar_always_evaluate_to_a_bool(source: str) -> None:
    assert isinstance(evaluate(source, NAMES), bool)
