"""What a valid execution id (and a task's step id) is: the one rule, used wherever ids enter.

An **execution id** is embedded in every store key of its execution (``exec/{eid}/step/{node}``,
``agenda/{eid}/{node}``, ... see ``distributed.keys``), is the Kafka key of its tasks and shows
up in logs and CLI output. It is valid when it is

* a string of 1 to ``MAX_ID_LENGTH`` (512) characters when a caller chooses it
  (``execute_async(..., execution_id=...)``); ids the engine derives for child executions --
  ``{parent}.{node}``, ``{parent}.{node}.{n}``, ``{base}#{n}`` -- grow with nesting (node ids
  are up to 256 characters, ``orchestration.validation``), so an id that names an existing
  execution (a lookup, a task on the queue) may have up to ``MAX_DERIVED_ID_LENGTH`` (4096),
* without ``/``: keys put ``/`` after the id, so ``a/step/x`` would read as step ``x`` of
  execution ``a``, and a prefix scan of one execution would reach into another's keys,
* without control characters (Unicode category Cc: NUL, tab, newline, DEL, ...), line or
  paragraph separators (Zl, Zp) or lone surrogates (Cs): the stores refuse NUL and text that is
  not UTF-8, and an id must print on one line.

Anything else goes (spaces, dots, ``#``, ``:``, any script, emoji), so derived ids, which keep
their parent's characters and add a node id (itself free of control characters, and of ``/``
for the nodes that start children), are valid too.

A **step id** (a task's ``node_id``) is the last part of its keys, so ``/`` is allowed there;
the character rule above applies, and its length is bounded by the task size limit.

Checked by ``DistributedEngine`` (every method taking an execution id: ``InvalidExecutionId``,
nothing stored), so by the CLI too (one line, exit 2), and by ``decode_task`` (a task with an
invalid id does not decode: it is dead-lettered once with the reason).
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidExecutionId

__all__ = [
    "MAX_DERIVED_ID_LENGTH",
    "MAX_ID_LENGTH",
    "check_execution_id",
    "execution_id_problem",
    "step_id_problem",
    "task_ids_problem",
]

MAX_ID_LENGTH = 512
"""The longest execution id a caller may choose."""
MAX_DERIVED_ID_LENGTH = 4096
"""The longest execution id that may name an execution: child ids nest under their parent's."""
_CATEGORY_NAMES = {
    "Cc": "a control character",
    "Cs": "a lone surrogate (not UTF-8)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
"""Every character of the categories Cc, Cs, Zl and Zp (stable sets: Unicode never assigns a
new character to them); a test checks it against ``unicodedata`` over all of Unicode."""


def _character_problem(value: str) -> str | None:
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    char, index = found.group(), found.start()
    what = "NUL" if char == "\x00" else _CATEGORY_NAMES[unicodedata.category(char)]
    return f"contains {what} (U+{ord(char):04X}) at position {index}"


def execution_id_problem(value: object, *, new: bool = False) -> str | None:
    """Why ``value`` is not a valid execution id, or None when it is; ``new``: a caller
    chooses it for a new execution (at most ``MAX_ID_LENGTH`` characters, not
    ``MAX_DERIVED_ID_LENGTH``)."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    limit = MAX_ID_LENGTH if new else MAX_DERIVED_ID_LENGTH
    if len(value) > limit:
        return f"is {len(value)} characters long, over the limit of {limit}"
    if "/" in value:
        return "contains '/' (store keys use it as the separator)"
    return _character_problem(value)


def step_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid step id on the queue, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    return _character_problem(value)


def check_execution_id(value: object, *, new: bool = False) -> str:
    """Return ``value`` if it is a valid execution id (``new``: chosen for a new execution),
    else raise ``InvalidExecutionId``."""
    problem = execution_id_problem(value, new=new)
    if problem is not None:
        raise InvalidExecutionId(value, problem)
    assert isinstance(value, str)
    return value


def task_ids_problem(execution_id: object, node_id: object) -> str | None:
    """Why a task with these ids can never run, or None when both are valid.

    Call it wherever a ``Task`` is built from outside input (``decode_task`` does); a
    ``Task`` model validator could call it too (raise ``ValueError`` with the text)."""
    problem = execution_id_problem(execution_id)
    if problem is not None:
        return f"invalid execution id {_shown(execution_id)}: {problem}"
    problem = step_id_problem(node_id)
    if problem is not None:
        return f"invalid step id {_shown(node_id)}: {problem}"
    return None


def _shown(value: object, limit: int = 80) -> str:
    """``repr`` of an id, cut to ``limit`` characters (an id may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
