"""The ``KVStore`` protocol and the batch operations ``Put``, ``Delete``, ``Incr`` and ``Publish``.

Keys are non-empty ``str`` without NUL characters (stored as UTF-8); values are ``bytes``; TTLs are
positive, finite seconds (``float``), kept with millisecond precision. Keys sort by code point,
which is also the byte order of their UTF-8 encoding, so every backend scans in the same order.

Each backend also keeps **logs**: append-only, ordered sequences of ``bytes`` entries, one per log
key, with offsets 1, 2, 3, ... assigned atomically by the store (so several processes may append to
one log). Log keys follow the key rules but live in their own namespace: a log and a value may share
a name, and ``scan`` never yields logs. A log is bounded by length (``max_len`` on append drops the
oldest entries), by the age of its entries (``max_age`` on append drops those appended longer
ago, by the store's clock) and as a whole (``ttl`` on append or :meth:`KVStore.log_expire` expires
the whole log); a log that expired or was deleted starts again at offset 1.

Every backend validates all arguments (for ``batch``: every operation) *before* it writes anything,
raising ``TypeError``/``ValueError``; that is what makes a rejected batch leave no trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["BatchOp", "Delete", "Incr", "KVStore", "Publish", "Put"]


class Put(NamedTuple):
    """Set ``key`` to ``value`` in a :meth:`KVStore.batch`, optionally expiring after ``ttl``."""

    key: str
    value: bytes
    ttl: float | None = None


class Delete(NamedTuple):
    """Remove ``key`` inside a :meth:`KVStore.batch` (absent keys are ignored)."""

    key: str


class Publish(NamedTuple):
    """Send ``message`` on ``channel`` (as :meth:`KVStore.publish`) inside a
    :meth:`KVStore.batch`: only once the batch is written, after its writes, so a listener that
    hears it and then reads finds them (not when ``batch_if``'s conditions fail or an ``Incr``
    raises). A notice, never a record, as ``publish``'s."""

    channel: str
    message: bytes


class Incr(NamedTuple):
    """Add ``amount`` to the ASCII decimal counter at ``key`` (absent = 0) inside a
    :meth:`KVStore.batch`, keeping the key's TTL (as :meth:`KVStore.incr`).

    It sees the batch's earlier operations on ``key`` (after a ``Put`` it adds to the value put,
    after a ``Delete`` it starts from 0), and a later ``Put`` overwrites it. Unlike ``incr``,
    counters in a batch stay within ``-(2**53 - 1) .. 2**53 - 1`` (``BATCH_COUNTER_LIMIT`` in
    ``store._common``: the integers a Redis Lua number holds exactly): ``amount``, the value an
    ``Incr`` starts from and every running sum must lie in that range. A batch in which an
    ``Incr`` meets a value that is not a counter, or would leave the range, raises
    ``ValueError`` and writes nothing. (``batch_if`` checks its conditions first: if one fails,
    nothing is written and nothing is raised.)
    """

    key: str
    amount: int = 1


BatchOp = Put | Delete | Incr | Publish
"""An operation of a :meth:`KVStore.batch`."""


@runtime_checkable
class KVStore(Protocol):
    """An async key-value store with a few atomic primitives.

    ``put``, ``compare_and_set`` and ``set_if_absent`` replace the key's TTL: without ``ttl`` the
    key no longer expires. ``incr`` keeps the current TTL.
    """

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` if it is absent or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values of ``keys`` in order (``None`` for absent ones), in one round trip."""
        ...

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Set ``key`` to ``value``; with ``ttl`` the key expires after that many seconds."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return ``True`` if it existed."""
        ...

    def scan(self, prefix: str, *, page_size: int = 500) -> AsyncIterator[tuple[str, bytes]]:
        """Yield ``(key, value)`` for keys starting with ``prefix`` in ascending key order.

        Results are fetched ``page_size`` at a time; expired keys are skipped. Keys written during
        the scan may or may not be seen.
        """
        ...

    async def batch(self, ops: Sequence[BatchOp]) -> None:
        """Apply every operation, in order, atomically: all of them or none (the notices of
        ``Publish`` operations are sent once every write is done)."""
        ...

    async def batch_if(self, expected: Mapping[str, bytes | None], ops: Sequence[BatchOp]) -> bool:
        """Apply ``ops`` like :meth:`batch`, but only if every key of ``expected`` holds its
        expected value (``None``: is absent), all in one atomic step; ``True`` if applied."""
        ...

    async def batch_if_get(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
        keys: Sequence[str],
    ) -> list[bytes | None] | None:
        """Like :meth:`batch_if`, and in the same atomic step read ``keys`` as the batch left
        them: their values in order (``None`` for absent ones) if it was applied, else
        ``None``. (So a writer learns what its own write completed, say the last of several
        edges into a join, without a second round trip and without a race.)"""
        ...

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
    ) -> tuple[bool, list[bytes | None]]:
        """Read ``keys`` and, in the same atomic step, apply ``ops`` like :meth:`batch_if` if
        every key of ``expected`` holds its expected value: whether the batch was applied, and
        the values of ``keys`` in order (``None`` for absent ones) as they were *before* it,
        either way. (So a reader that usually writes next, say a worker leasing a step that
        has not started, reads and writes in one round trip, and when it may not write it
        still learns why.)"""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        """Set ``key`` to ``new`` if its value is ``expected`` (``None``: if it is absent)."""
        ...

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Set ``key`` to ``value`` only if it is absent; return ``True`` if it was set."""
        ...

    async def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the ASCII decimal counter at ``key`` (absent = 0); return the sum."""
        ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Make ``key`` expire ``ttl`` seconds from now; ``False`` if it is absent."""
        ...

    async def expire_prefix(self, prefix: str, ttl: float | None) -> int:
        """Make every key under ``prefix`` (as ``scan`` lists them) expire ``ttl`` seconds
        from now, as ``expire`` does one, or with ``ttl=None`` never expire (an expiry given
        before is taken back); return how many keys there are. A non-empty prefix only."""
        ...

    async def log_append(
        self,
        key: str,
        entries: Sequence[bytes],
        *,
        max_len: int | None = None,
        ttl: float | None = None,
        max_age: float | None = None,
    ) -> int:
        """Append ``entries`` (at least one) to the log ``key`` in one atomic step; return the
        offset of the last one. Their offsets are contiguous and follow the log's last offset.
        ``max_len`` then keeps only the newest ``max_len`` entries; ``max_age`` (seconds) drops
        the entries appended more than ``max_age`` seconds ago (never the ones just appended;
        the trim reads only what it drops and one entry more, so it costs an append little);
        ``ttl`` makes the log expire ``ttl`` seconds from now (without it the log's expiry is
        unchanged). Trimming never changes the offsets of the entries kept."""
        ...

    async def log_read(
        self, key: str, *, after: int = 0, limit: int = 500
    ) -> list[tuple[int, bytes]]:
        """Return up to ``limit`` ``(offset, entry)`` pairs of the log ``key`` whose offset is
        greater than ``after``, in offset order (``[]`` for an absent log)."""
        ...

    async def log_expire(self, key: str, ttl: float | None) -> bool:
        """Make the log ``key`` expire ``ttl`` seconds from now, or with ``ttl=None`` never
        (an expiry given before is taken back); ``False`` if it is absent."""
        ...

    async def log_delete(self, key: str) -> bool:
        """Remove the log ``key`` and all its entries; ``True`` if it existed."""
        ...

    async def publish(self, channel: str, message: bytes) -> int:
        """Send ``message`` to whoever listens on ``channel`` now (``listen``), in every process
        that shares the store; return how many listeners it reached. Nothing is kept: a
        notice, never a record (a listener that is not listening at that moment misses it)."""
        ...

    def listen(self, channel: str) -> AsyncIterator[bytes]:
        """The messages published on ``channel`` from when the iteration starts listening (its
        first ``__anext__``) on, until the store closes. Best effort: after a lost connection
        (``StoreUnavailable``) listen again, and read the state that matters from the store."""
        ...

    async def close(self) -> None:
        """Release the backend's resources; later calls raise ``StoreClosed``. Idempotent."""
        ...
