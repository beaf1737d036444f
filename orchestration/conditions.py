"""A small, safe expression language for edge conditions (never ``eval``).

Grammar::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand)?
    operand    := literal | path | "(" expr ")" | "[" (expr ("," expr)*)? "]"
    path       := NAME ("." (NAME | INTEGER))*
    literal    := 'str' | "str" | number | true | false | null

Names resolve against the mapping given to ``evaluate`` (see ``routing.route`` for the names
an edge condition sees). A missing name or path segment is ``null``. Ordering comparisons
between values that cannot be ordered (``null < 3``) are false, never an error. ``x in y``
tests substring for strings, membership for lists and key presence for objects.

Errors: anything outside the grammar (or longer than ``MAX_LENGTH``, or nested deeper than
``MAX_DEPTH``, or not a string) is a ``ConditionError`` from ``compile_condition`` -- at load
time, for edge conditions and loop ``while`` clauses. Evaluating never fails on the values it
meets (a mismatch has the defined results above); only values nested too deeply to compare
(deeper than any JSON value an engine keeps) give a ``ConditionError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from orchestration.errors import ConditionError

__all__ = ["Condition", "compile_condition", "evaluate"]

MAX_LENGTH = 2000
MAX_DEPTH = 40

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_INDEXES = re.compile(r"\d+\.\d+")
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}

Evaluator = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    source = source.rstrip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise ConditionError(f"unexpected character at {position} in {source!r}")
        group = match.lastgroup or "op"
        text = match.group(group)
        kind = "keyword" if group == "name" and text in _KEYWORDS else group
        tokens.append(_Token(kind, text, match.start(group)))
        position = match.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op in ("in", "not in"):
        return _contains(right, left) == (op == "in")
    try:
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )
    except TypeError:
        return False


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | dict):
        try:
            return item in container
        except TypeError:
            return False
    return False


def _lookup(names: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = names
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class _Parser:
    """Recursive-descent parser producing a tree of closures."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0

    def parse(self) -> Evaluator:
        evaluator = self._or()
        if self._peek().kind != "end":
            self._fail("unexpected token")
        return evaluator

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _accept(self, text: str) -> bool:
        token = self._peek()
        if token.kind in ("op", "keyword") and token.text == text:
            self.index += 1
            return True
        return False

    def _expect(self, text: str) -> None:
        if not self._accept(text):
            self._fail(f"expected {text!r}")

    def _fail(self, message: str) -> None:
        token = self._peek()
        found = token.text or "end of expression"
        raise ConditionError(f"{message} at {token.position} ({found!r}) in {self.source!r}")

    def _nested(self, parse: Callable[[], Evaluator]) -> Evaluator:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self._fail("expression nested too deeply")
        try:
            return parse()
        finally:
            self.depth -= 1

    def _or(self) -> Evaluator:
        parts = [self._and()]
        while self._accept("or"):
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda names: any(bool(part(names)) for part in parts)

    def _and(self) -> Evaluator:
        parts = [self._not()]
        while self._accept("and"):
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda names: all(bool(part(names)) for part in parts)

    def _not(self) -> Evaluator:
        if self._accept("not"):
            inner = self._nested(self._not)
            return lambda names: not inner(names)
        return self._comparison()

    def _comparison(self) -> Evaluator:
        left = self._operand()
        op = self._comparison_operator()
        if op is None:
            return left
        right = self._operand()
        return lambda names: _compare(op, left(names), right(names))

    def _comparison_operator(self) -> str | None:
        token = self._peek()
        if token.kind == "op" and token.text in ("==", "!=", "<", "<=", ">", ">="):
            self.index += 1
            return token.text
        if self._accept("in"):
            return "in"
        if token.text == "not" and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return "not in"
        return None

    def _operand(self) -> Evaluator:
        token = self._take()
        if token.kind == "number":
            number = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            return lambda names: number
        if token.kind == "string":
            text = _unquote(token.text)
            return lambda names: text
        if token.kind == "keyword" and token.text in _LITERALS:
            literal = _LITERALS[token.text]
            return lambda names: literal
        if token.kind == "name":
            return self._path(token.text)
        if token.text == "(":
            inner = self._nested(self._or)
            self._expect(")")
            return inner
        if token.text == "[":
            return self._nested(self._list)
        self.index -= 1
        self._fail("expected a value")
        raise AssertionError("unreachable")

    def _path(self, first: str) -> Evaluator:
        parts = [first]
        while self._accept("."):
            token = self._take()
            if token.kind == "name" or (token.kind == "number" and token.text.isdigit()):
                parts.append(token.text)
            elif token.kind == "number" and _INDEXES.fullmatch(token.text):
                parts += token.text.split(".")  # items.0.1 reads 0.1 as one number token
            else:
                self.index -= 1
                self._fail("expected a name after '.'")
        path = tuple(parts)
        return lambda names: _lookup(names, path)

    def _list(self) -> Evaluator:
        items: list[Evaluator] = []
        if not self._accept("]"):
            items.append(self._or())
            while self._accept(","):
                items.append(self._or())
            self._expect("]")
        return lambda names: [item(names) for item in items]


@dataclass(frozen=True)
class Condition:
    """A compiled condition; call ``evaluate(names)`` to get its truth value."""

    source: str
    _evaluator: Evaluator

    def evaluate(self, names: Mapping[str, Any]) -> bool:
        """Truth value of the expression with ``names`` as the variables."""
        try:
            return bool(self._evaluator(names))
        except RecursionError:
            raise ConditionError(
                f"values too deeply nested to compare in {self.source!r}"
            ) from None


def compile_condition(source: str) -> Condition:
    """Parse ``source``; raises ``ConditionError`` for anything outside the grammar."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("a condition must be a non-empty string")
    if len(source) > MAX_LENGTH:
        raise ConditionError(f"a condition is limited to {MAX_LENGTH} characters")
    return _compile(source)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Condition:
    return Condition(source, _Parser(source).parse())


def evaluate(source: str, names: Mapping[str, Any]) -> bool:
    """Compile (cached) and evaluate ``source`` against ``names``."""
    return compile_condition(source).evaluate(names)
