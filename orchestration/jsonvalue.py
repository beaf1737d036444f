"""The JSON value type and the one check every step result goes through.

What counts as JSON here is what every backend can write *and read back*: ``None``, ``bool``,
``int``, finite ``float``, ``str`` (Unicode text: no lone surrogates), ``list`` (tuples are
written as lists) and ``dict`` with string keys, nested at most ``MAX_JSON_DEPTH`` levels.
The depth bound is below what pydantic-core reads (about 200 levels) with room for the records
that wrap a value in the store (an execution record around its inputs, a step record around
its output): a deeper value could be written but never read back.
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestration.errors import InvalidJSONValue

__all__ = [
    "JSON",
    "MAX_JSON_DEPTH",
    "canonical_json",
    "json_problem",
    "to_json_value",
]

JSON = Any
"""A JSON-serialisable value: None, bool, int, float, str, list of JSON, dict of str -> JSON."""

MAX_JSON_DEPTH = 128
"""How deeply lists and objects may nest in a value (a scalar is depth 0, ``[1]`` depth 1)."""

_SCALARS = (str, int, float, bool, type(None))
_BIG_INT_BITS = 10_000  # below this an int always has fewer decimal digits than Python's limit


def to_json_value(value: Any, what: str = "value") -> JSON:
    """Return ``value`` as it reads back from JSON (tuples become lists, keys strings).

    Raises ``InvalidJSONValue`` (a ``TypeError`` and a ``ValueError``) when ``value`` cannot be
    encoded, holds NaN or an infinity, a string that is not Unicode text, or nests deeper than
    ``MAX_JSON_DEPTH``; ``what`` names the value in the message. Both engines store this normal
    form, so a local run and a distributed run see identical values.
    """
    if _plain_scalar(value):
        return value
    if type(value) in (list, dict) and not value:
        return type(value)()  # a new one, as for any container
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")  # a lone surrogate has no UTF-8 form: no store could keep it
    except RecursionError:
        raise InvalidJSONValue(f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeEncodeError:
        raise InvalidJSONValue(f"{what} holds a lone surrogate (not Unicode text)") from None
    except (TypeError, ValueError) as exc:
        raise InvalidJSONValue(f"{what} is not JSON: {_short(str(exc))}") from None
    result = json.loads(text)
    # Only a text with that many brackets can nest that deep: most values skip the walk.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(result) > MAX_JSON_DEPTH:
        raise InvalidJSONValue(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return result


def _plain_scalar(value: Any) -> bool:
    """Whether ``value`` is already its own normal form: a scalar of exactly a JSON type that
    JSON writes and reads back unchanged (most step results: writing and parsing is saved)."""
    kind = type(value)
    if kind is str:
        return bool(value.isascii()) or _scalar_problem(value) is None
    if kind is int:
        return bool(value.bit_length() < _BIG_INT_BITS)
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is bool


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """The first reason ``value`` is not strict JSON, as ``(path, message)``; None when it is.

    Stricter than ``to_json_value``: nothing is converted (a tuple, a set, a non-string key are
    problems), so a definition is either kept exactly as written or refused. ``path`` is like
    ``params.inputs.0`` (empty for ``value`` itself). Never recurses, so any depth is safe.
    """
    found = _first_problem(value, max_depth)
    if found is None:
        return None
    path, message = found
    return (path if len(path) <= 100 else f"{path[:48]}…{path[-48:]}"), message


def _first_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, _SCALARS):
            problem = _scalar_problem(item)
            if problem is not None:
                return path, problem
            continue
        if depth >= max_depth:
            return path, f"nested deeper than {max_depth} levels"
        if isinstance(item, list):
            stack += [(v, _join(path, str(i)), depth + 1) for i, v in enumerate(item)]
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return path, f"key {_short(repr(key))} is not a string"
                problem = _scalar_problem(key)
                if problem is not None:
                    return _join(path, key), f"key: {problem}"
                stack.append((child, _join(path, key), depth + 1))
        else:
            return path, f"a value of type {type(item).__name__} is not JSON"
    return None


def canonical_json(value: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces) used for content hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _scalar_problem(value: str | int | float | bool | None) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"a string holds a lone surrogate at position {exc.start} (not Unicode text)"
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a JSON number"
    elif (
        isinstance(value, int) and not isinstance(value, bool) and _too_long(value)
    ):  # json.dumps cannot write it
        return "an integer with too many digits to write"
    return None


def _too_long(value: int) -> bool:
    if value.bit_length() < _BIG_INT_BITS:
        return False
    try:
        str(value)
    except ValueError:
        return True
    return False


def _depth(value: JSON) -> int:
    """How deeply ``value`` (lists and dicts only) nests, without recursion."""
    deepest = 0
    stack: list[tuple[JSON, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack += [(child, depth + 1) for child in children if isinstance(child, dict | list)]
    return deepest


def _join(path: str, part: str) -> str:
    """``path.part``, the part printable (escapes for control characters and surrogates)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in _short(part))
    return f"{path}.{shown}" if path else shown


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
