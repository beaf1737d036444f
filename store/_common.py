"""Helpers shared by the backends: argument checks, counter encoding, ``async with`` support.

Private to the package: backends call the ``check_*`` functions before they write anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

from store.base import BatchOp, Delete, Incr, Publish, Put

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Counters an ``Incr`` of a batch touches stay within +-BATCH_COUNTER_LIMIT: the integers a Lua
# number (a double) holds exactly, so Redis's batch script computes them exactly.
BATCH_COUNTER_LIMIT = 2**53 - 1
_COUNTER = re.compile(rb"(0|-?[1-9][0-9]{0,18})\Z")


class StoreContextMixin:
    """``async with store:`` support: closes the store on exit."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid key, else raise ``TypeError``/``ValueError``."""
    if type(key) is str and key.isascii() and key and "\x00" not in key:
        return key  # the usual key, checked without encoding it
    if not isinstance(key, str):
        raise TypeError(f"store keys must be str, not {type(key).__name__}")
    if not key:
        raise ValueError("store keys must not be empty")
    _check_text(key, "key")
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a valid scan prefix (may be empty)."""
    if not isinstance(prefix, str):
        raise TypeError(f"scan prefix must be str, not {type(prefix).__name__}")
    _check_text(prefix, "prefix")
    return prefix


def check_whole_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a valid, non-empty scan prefix (an operation on every key
    under it must not reach the whole store by mistake)."""
    if not check_prefix(prefix):
        raise ValueError("the prefix must not be empty")
    return str(prefix)


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise ValueError(f"store {what}s must not contain NUL characters: {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"store {what} {text!r} is not encodable as UTF-8") from exc


def check_value(value: object) -> bytes:
    """Return ``value`` if it is ``bytes``, else raise ``TypeError``."""
    if not isinstance(value, bytes):
        raise TypeError(f"store values must be bytes, not {type(value).__name__}")
    return value


def check_ttl(ttl: object) -> float:
    """Return ``ttl`` if it is a positive, finite number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive, finite number of seconds, not {ttl!r}")
    return float(ttl)


def check_optional_ttl(ttl: object) -> float | None:
    """Like :func:`check_ttl`, accepting ``None`` (no expiry)."""
    return None if ttl is None else check_ttl(ttl)


def check_amount(amount: object) -> int:
    """Return ``amount`` if it is an ``int`` within the signed 64-bit range."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"incr amount must be int, not {type(amount).__name__}")
    if not INT64_MIN <= amount <= INT64_MAX:
        raise ValueError(f"incr amount {amount} is outside the signed 64-bit range")
    return amount


def check_page_size(page_size: object) -> int:
    """Return ``page_size`` if it is a positive ``int``."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive int, not {page_size!r}")
    return page_size


def check_ops(ops: Sequence[BatchOp]) -> list[BatchOp]:
    """Validate every operation of a batch, before anything is written."""
    checked = list(ops)
    for op in checked:
        if isinstance(op, Put):
            check_key(op.key)
            if type(op.value) is not bytes:  # the checks of a step's commit: spare the calls
                check_value(op.value)
            if op.ttl is not None:
                check_ttl(op.ttl)
        elif isinstance(op, Delete):
            check_key(op.key)
        elif isinstance(op, Incr):
            check_key(op.key)
            _check_batch_amount(op.amount)
        elif isinstance(op, Publish):
            check_key(op.channel)
            check_value(op.message)
        else:
            kind = type(op).__name__
            raise TypeError(f"batch operations must be Put, Delete, Incr or Publish, not {kind}")
    return checked


def _check_batch_amount(amount: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"Incr amount must be int, not {type(amount).__name__}")
    if abs(amount) > BATCH_COUNTER_LIMIT:
        raise ValueError(f"Incr amount {amount} is outside +-{BATCH_COUNTER_LIMIT} (2**53 - 1)")


def check_expected(expected: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
    """Validate the conditions of a ``batch_if``, before anything is written."""
    checked = dict(expected)
    for key, value in checked.items():
        check_key(key)
        if value is not None and type(value) is not bytes:
            check_value(value)
    return checked


def ttl_to_ms(ttl: float) -> int:
    """Convert a TTL in seconds to whole milliseconds (at least 1)."""
    return max(1, round(ttl * 1000))


def parse_counter(key: str, raw: bytes) -> int:
    """Parse a counter value (ASCII decimal, signed 64-bit), or raise ``ValueError``."""
    if not _COUNTER.match(raw) or not INT64_MIN <= int(raw) <= INT64_MAX:
        raise ValueError(f"value of {key!r} is not a 64-bit decimal integer: {raw[:40]!r}")
    return int(raw)


def add_counter(key: str, current: int, amount: int) -> int:
    """Return ``current + amount``, or raise ``ValueError`` if it overflows 64 bits (as Redis)."""
    total = current + amount
    if not INT64_MIN <= total <= INT64_MAX:
        raise ValueError(f"incr of {key!r} by {amount} would overflow a signed 64-bit integer")
    return total


def add_batch_counter(key: str, current: bytes | None, amount: int) -> bytes:
    """The value an ``Incr`` of a batch leaves at ``key`` holding ``current`` (``None``: absent),
    or ``ValueError`` if that is not a counter or it or the sum leaves +-BATCH_COUNTER_LIMIT."""
    start = 0 if current is None else parse_counter(key, current)
    total = start + amount
    if abs(start) > BATCH_COUNTER_LIMIT or abs(total) > BATCH_COUNTER_LIMIT:
        raise ValueError(
            f"Incr of {key!r} by {amount} in a batch: counter {start} or the sum leaves"
            f" +-{BATCH_COUNTER_LIMIT} (2**53 - 1)"
        )
    return format_counter(total)


def format_counter(value: int) -> bytes:
    """Encode a counter as ASCII decimal bytes."""
    return str(value).encode("ascii")


def check_log_entries(entries: object) -> list[bytes]:
    """Return the entries of a ``log_append`` as a list: at least one, every one ``bytes``."""
    if isinstance(entries, bytes | str) or not isinstance(entries, Sequence):
        raise TypeError("log entries must be a sequence of bytes")
    checked = [check_value(entry) for entry in entries]
    if not checked:
        raise ValueError("log_append needs at least one entry")
    return checked


def check_max_len(max_len: object) -> int | None:
    """Return ``max_len`` if it is ``None`` or a positive ``int`` (a log keeps at least one)."""
    if max_len is None:
        return None
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, not {max_len!r}")
    return max_len


def check_offset(offset: object) -> int:
    """Return ``offset`` if it is an ``int`` >= 0 (0 = before the first entry)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"log offsets are ints >= 0, not {offset!r}")
    return offset


def published(ops: Sequence[BatchOp]) -> list[Publish]:
    """The ``Publish`` operations of a batch, to send once it is written."""
    return [op for op in ops if isinstance(op, Publish)]
