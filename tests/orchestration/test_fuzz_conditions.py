"""Fuzzing edge conditions (hypothesis): any text, grammar-built expressions, any values.

Properties:

* ``condition-text``: any text compiles to a ``Condition`` or raises ``ConditionError``; nothing
  else escapes, and a compiled condition evaluates to a bool.
* ``condition-grammar``: every expression built from the grammar compiles, and evaluates to
  what a reference model of the documented semantics says, for any JSON names.
* ``condition-values``: a compiled condition meets values of any type (and depth): the result
  is a bool or a ``ConditionError``, never an exception from a comparison.
* ``condition-in-blueprint``: an edge condition (and a loop's ``while``) is refused at load
  time exactly when ``compile_condition`` refuses it; a blueprint never loads with a condition
  that fails later.

The suite runs each target with few examples (derandomized when ``CI`` is set, no example
database); ``benchmarks/fuzz.py`` runs the same targets with many more.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import Target, run_target, stateless
from hypothesis import strategies as st

from orchestration import BlueprintValidationError, ConditionError, Engine
from orchestration.conditions import MAX_LENGTH, compile_condition

# -- strategies -----------------------------------------------------------------------------------

NAMES = ["score", "output", "action", "state", "x", "items", "user", "a_b", "Z9"]
KEYWORDS = ["and", "or", "not", "in", "true", "false", "null"]
TOKENS = [
    *NAMES,
    *KEYWORDS,
    *"()[],.<>=!'\"\\-",
    "==",
    "!=",
    "<=",
    ">=",
    "not in",
    "0",
    "1",
    "-2.5",
    "1e309",
    "٣",
    "'text'",
    '"x\\"y"',
    "__import__('os').system('true')",
    "lambda: 1",
    "a if b else c",
    "x[0]",
    "x.0",
    "\x00",
    "\n",
    "\t",
    "é",
    "\ud800",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(NAMES), inner),
    max_leaves=8,
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Anything at all: values of any type, including nested far deeper than any engine keeps.
any_values = (
    json_values
    | st.floats()
    | st.builds(object)
    | st.sets(st.integers(), max_size=3)
    | st.binary(max_size=8)
    | st.integers(min_value=0, max_value=5000).map(_nested)
)

token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)
condition_texts = (
    st.text(max_size=60)
    | token_soup
    | st.integers(min_value=1, max_value=120).map(lambda n: "(" * n + "x" + ")" * n)
    | st.integers(min_value=1, max_value=120).map(lambda n: "not " * n + "x")
    | st.integers(min_value=1, max_value=120).map(lambda n: "[" * n + "]" * n)
    | st.integers(min_value=MAX_LENGTH - 2, max_value=MAX_LENGTH + 2).map(lambda n: "x" * n)
)


# -- a reference model of the documented semantics ------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """An expression tree node: renders to source, and says what it evaluates to."""

    kind: str  # literal, path, list, compare, not, and, or
    value: Any = None  # literal value, path parts, or comparison operator
    children: tuple[Expr, ...] = ()

    def source(self) -> str:
        if self.kind == "literal":
            return _literal_source(self.value)
        if self.kind == "path":
            return ".".join(self.value)
        if self.kind == "list":
            return "[" + ", ".join(child.source() for child in self.children) + "]"
        if self.kind == "compare":
            left, right = self.children
            return f"{_operand(left)} {self.value} {_operand(right)}"
        if self.kind == "not":
            (inner,) = self.children
            wrapped = f"({inner.source()})" if inner.kind in ("and", "or") else inner.source()
            return f"not {wrapped}"
        joiner = f" {self.kind} "
        return joiner.join(
            f"({child.source()})" if child.kind in ("and", "or") else child.source()
            for child in self.children
        )

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        if self.kind == "literal":
            return self.value
        if self.kind == "path":
            return _lookup(names, self.value)
        if self.kind == "list":
            return [child.evaluate(names) for child in self.children]
        if self.kind == "compare":
            left, right = (child.evaluate(names) for child in self.children)
            return _compare(self.value, left, right)
        if self.kind == "not":
            return not self.children[0].evaluate(names)
        truths = [bool(child.evaluate(names)) for child in self.children]
        return all(truths) if self.kind == "and" else any(truths)


def _operand(expr: Expr) -> str:
    """An operand in source: literals, paths and lists as they are, the rest in parentheses."""
    return expr.source() if expr.kind in ("literal", "path", "list") else f"({expr.source()})"


def _literal_source(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return repr(value)
    quote = "'" if len(value) % 2 else '"'  # both quote styles
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{escaped}{quote}"


def _lookup(names: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = names
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op in ("in", "not in"):
        if isinstance(right, str):
            found = isinstance(left, str) and left in right
        elif isinstance(right, list | dict):
            try:
                found = left in right
            except TypeError:
                found = False
        else:
            found = False
        return found == (op == "in")
    ordering: dict[str, Callable[[Any, Any], Any]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    try:
        return bool(ordering[op](left, right))
    except TypeError:
        return False


literal_exprs = st.builds(
    lambda v: Expr("literal", v),
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: math.isfinite(f))
    | st.text(max_size=10),
)
path_exprs = st.builds(
    lambda head, rest: Expr("path", (head, *rest)),
    st.sampled_from(NAMES),
    st.lists(st.sampled_from([*NAMES, "0", "1", "2"]), max_size=3),
)


def _extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    """One more level of expressions over ``inner``."""
    return (
        st.builds(
            lambda op, left, right: Expr("compare", op, (left, right)),
            st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
            inner,
            inner,
        )
        | st.builds(lambda items: Expr("list", None, tuple(items)), st.lists(inner, max_size=3))
        | st.builds(lambda item: Expr("not", None, (item,)), inner)
        | st.builds(
            lambda kind, items: Expr(kind, None, tuple(items)),
            st.sampled_from(["and", "or"]),
            st.lists(inner, min_size=2, max_size=3),
        )
    )


expressions: st.SearchStrategy[Expr] = st.recursive(
    literal_exprs | path_exprs, _extend, max_leaves=10
)
names_strategy = st.dictionaries(st.sampled_from(NAMES), json_values, max_size=4)


# -- checks ---------------------------------------------------------------------------------------


def check_text(source: str) -> str:
    try:
        condition = compile_condition(source)
    except ConditionError:
        return "refused"
    assert isinstance(condition.evaluate({"score": 1, "x": "x"}), bool)
    return "compiled"


def check_grammar(case: tuple[Expr, dict[str, Any]]) -> str:
    expr, names = case
    source = expr.source()
    if len(source) > MAX_LENGTH:
        with pytest.raises(ConditionError):
            compile_condition(source)
        return "too long"
    try:
        expected = bool(expr.evaluate(names))
    except RecursionError:  # pragma: no cover - the strategy keeps trees shallow
        return "too deep for the model"
    assert compile_condition(source).evaluate(names) is expected, source
    return str(expected).lower()


def check_values(case: tuple[Expr, dict[str, Any]]) -> str:
    expr, names = case
    source = expr.source()
    if len(source) > MAX_LENGTH:
        return "too long"
    condition = compile_condition(source)
    try:
        result = condition.evaluate(names)
    except ConditionError:
        return "ConditionError"
    assert isinstance(result, bool)
    return str(result).lower()


def _loop_blueprint(condition: str) -> dict[str, Any]:
    return {
        "id": "fuzz-while",
        "nodes": [
            {
                "id": "again",
                "uses": "loop",
                "params": {"body": "fuzz-body", "maxIterations": 2, "while": condition},
            }
        ],
    }


BODY = {"id": "fuzz-body", "nodes": [{"id": "o", "uses": "output", "params": {}}]}


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_in_blueprint(source: str) -> str:
    try:
        compile_condition(source)
        valid = _unicode(source)  # a blueprint holds Unicode text only (no lone surrogates)
    except ConditionError:
        valid = False
    engine = Engine()
    engine.register_blueprint(BODY)
    edge = {
        "id": "fuzz-edge",
        "nodes": [
            {"id": "a", "uses": "output", "params": {}},
            {"id": "b", "uses": "output", "params": {}},
        ],
        "edges": [{"source": "a", "target": "b", "condition": source}],
    }
    for blueprint in (edge, _loop_blueprint(source)):
        try:
            engine.register_blueprint(blueprint)
            loaded = True
        except BlueprintValidationError:
            loaded = False
        assert loaded is valid, (source, blueprint["id"])
    return "loaded" if valid else "refused at load"


TARGETS = [
    Target("condition-text", condition_texts, stateless(check_text), 250),
    Target(
        "condition-grammar",
        st.tuples(expressions, names_strategy),
        stateless(check_grammar),
        120,
    ),
    Target(
        "condition-values",
        st.tuples(expressions, st.dictionaries(st.sampled_from(NAMES), any_values, max_size=4)),
        stateless(check_values),
        100,
    ),
    Target(
        "condition-in-blueprint",
        condition_texts | expressions.map(lambda e: e.source()),
        stateless(check_in_blueprint),
        100,
    ),
]


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_fuzz(target: Target) -> None:
    run_target(target)


# -- never eval -----------------------------------------------------------------------------------

CONDITIONS = Path(__file__).resolve().parents[2] / "orchestration" / "conditions.py"


def test_the_condition_language_never_evaluates_python() -> None:
    """No ``eval``/``exec``/``compile``/``__import__``/``getattr`` call anywhere in the module:
    names are looked up in the mapping given, never in Python."""
    tree = ast.parse(CONDITIONS.read_text(encoding="utf-8"))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "globals", "vars"}


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('touch /tmp/flowloom-pwned')",
        "().__class__.__bases__[0].__subclasses__()",
        "output.__class__()",
        "lambda: 1",
        "x if y else z",
        "open('/etc/passwd')",
    ],
)
def test_python_is_not_a_condition(source: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(source)


def test_a_dunder_name_is_only_a_key_of_the_names() -> None:
    condition = compile_condition("output.__class__ == null and __builtins__ == null")
    assert condition.evaluate({"output": "text"}) is True
    assert compile_condition("x.__len__ == 3").evaluate({"x": {"__len__": 3}}) is True


@pytest.mark.parametrize("source", [None, 3, ["x"], {"x": 1}, b"x == 1", ""])
def test_a_condition_that_is_not_text_is_a_condition_error(source: Any) -> None:
    with pytest.raises(ConditionError):
        compile_condition(source)
