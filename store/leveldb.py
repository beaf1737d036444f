"""``LevelDBStore``: the embedded, persistent ``KVStore`` on LevelDB (plyvel).

On-disk layout (one LevelDB directory, keys are bytes)::

    b"d" + utf8(key)                      -> expiry (8 bytes, big-endian ms since the Unix epoch,
                                             0 = never) + value
    b"x" + expiry (8 bytes) + utf8(key)   -> b""   expiry index, ordered by expiry time
    b"m" + utf8(log key)                  -> expiry (8 bytes) + first offset (8) + last offset (8)
                                             + time of the first entry (8, ms; absent: unknown)
    b"l" + utf8(log key) + b"\x00" + offset (8 bytes, big-endian) -> entry    a log's entries
    b"t" + utf8(log key) + b"\x00" + offset (8 bytes) -> time (8 bytes, ms)   a log's time marks:
                                             when the append whose first entry has that offset ran
    b"x" + expiry (8 bytes) + b"\x00" + utf8(log key) -> b""   a log's expiry (keys have no NUL)

Expired values are hidden on read (wall clock, so TTLs survive a restart). The expiry index lets a
sweep find due keys without reading the whole database: it runs when the store opens, before a write
once ``sweep_interval`` seconds have passed since the last one, and on :meth:`LevelDBStore.sweep`.
Index entries can be stale (the key was rewritten since); the sweep checks the value's own header
before deleting and drops stale entries.

Concurrency: LevelDB allows one process per directory; a second opener gets :class:`StoreLocked`.
Inside the process, plyvel calls take microseconds, so they run inline on the event loop rather than
in a thread. Every operation holds a ``threading.Lock`` and contains no ``await``, which makes the
read-modify-write atomics (compare-and-set, set-if-absent, incr, expire) atomic for coroutines and
threads alike; an ``asyncio.Lock`` would add nothing. Multi-key writes use
``write_batch(transaction=True)``. Writes are not fsynced unless ``sync=True``: a process crash
loses nothing, an OS crash may lose the last writes.

Write buffer: with LevelDB's default (4 MiB), its background compaction cost half as much CPU
as the steps themselves by 150,000 steps of an embedded runtime, and more as the database grew
(every step record, agenda entry and event of an execution lands at a random place in the key
space, and each flush of the buffer is merged into the level below). ``DEFAULT_WRITE_BUFFER``
(16 MiB) cut the bytes compaction wrote over those 150,000 steps from 1,040 to 274 MiB and its
CPU by three quarters (``benchmarks/README.md``); it still grows with the database. The price is
up to twice that much memory (the buffer and the one being flushed), and as much log to replay
when the store opens after a crash.

Bloom filters (``BLOOM_FILTER_BITS`` per key; LevelDB has none by default): most of a step's
reads are of keys that are absent, and without a filter each read a level's tables cannot answer
costs a block read per level, so a step grew dearer as the store grew (an embedded chain-10's
loop CPU per step: 133 → 155 µs from 250,000 to 1,000,000 steps without filters, 135 → 146
with them; what is left of the growth is mostly compaction). Tables written without filters
(by an earlier version) are read as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from itertools import islice
from types import TracebackType

import plyvel

from store._channels import Channels
from store._common import (
    StoreContextMixin,
    add_batch_counter,
    add_counter,
    check_amount,
    check_expected,
    check_key,
    check_log_entries,
    check_max_len,
    check_offset,
    check_ops,
    check_optional_ttl,
    check_page_size,
    check_prefix,
    check_ttl,
    check_value,
    check_whole_prefix,
    format_counter,
    parse_counter,
    published,
    ttl_to_ms,
)
from store.base import BatchOp, Delete, Publish, Put
from store.errors import StoreClosed, StoreLocked, StoreUnavailable

__all__ = ["DEFAULT_WRITE_BUFFER", "LevelDBStore"]

logger = logging.getLogger(__name__)

_DATA = b"d"
_INDEX = b"x"
_LOG = b"l"
_LOG_META = b"m"
_LOG_TIMES = b"t"
_SWEEP_LIMIT = 10_000
DEFAULT_WRITE_BUFFER = 16 * 2**20
"""Bytes LevelDB buffers in memory before it writes a table (see the module's notes)."""
BLOOM_FILTER_BITS = 10
"""Bits per key of the tables' bloom filters: a read of an absent key (a commit checks three:
the final status, the pause, its successor's record) skips the tables that cannot hold it
instead of reading a block of each level (see the module's notes)."""

Mutation = tuple[bytes, bytes | None]  # (raw key, raw value or None to delete)


def _check_buffer(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"write_buffer_size must be an int, not {type(size).__name__}")
    if not 2**16 <= size <= 2**30:
        raise ValueError(f"write_buffer_size must be from 64 KiB to 1 GiB, not {size}")
    return size


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _data_key(key: str) -> bytes:
    return _DATA + key.encode("utf-8")


def _index_key(expiry_ms: int, key: str) -> bytes:
    return _INDEX + expiry_ms.to_bytes(8, "big") + key.encode("utf-8")


def _log_prefix(key: str) -> bytes:
    return _LOG + key.encode("utf-8") + b"\x00"


def _log_entry_key(key: str, offset: int) -> bytes:
    return _log_prefix(key) + offset.to_bytes(8, "big")


def _log_meta(raw: bytes | None, now_ms: int) -> tuple[int, int, int] | None:
    """``(expiry, first, last)`` of a live log's meta record, or ``None``."""
    if raw is None:
        return None
    expiry, first, last = (int.from_bytes(raw[i : i + 8], "big") for i in (0, 8, 16))
    return None if expiry and expiry <= now_ms else (expiry, first, last)


def _log_oldest(raw: bytes) -> int:
    """When a log's first entry was appended (ms; 0 when its meta record predates the field)."""
    return int.from_bytes(raw[24:32], "big") if len(raw) >= 32 else 0


def _log_mark_prefix(key: str) -> bytes:
    return _LOG_TIMES + key.encode("utf-8") + b"\x00"


def _log_mark(key: str, offset: int) -> bytes:
    return _log_mark_prefix(key) + offset.to_bytes(8, "big")


def _log_range(key: str, first: int, stop: int) -> list[Mutation]:
    """Deletions of the entries ``first .. stop - 1`` of a log."""
    return [(_log_entry_key(key, offset), None) for offset in range(first, stop)]


def _expiry(ttl: float | None, now_ms: int) -> int:
    return 0 if ttl is None else now_ms + ttl_to_ms(ttl)


def _unpack(raw: bytes | None, now_ms: int) -> bytes | None:
    """Return the value inside a stored record, or ``None`` if absent or expired."""
    if raw is None:
        return None
    expiry = int.from_bytes(raw[:8], "big")
    return None if expiry and expiry <= now_ms else raw[8:]


def _record(key: str, value: bytes, expiry_ms: int) -> list[Mutation]:
    """The mutations that store ``value`` under ``key`` with the given expiry (0 = never)."""
    mutations: list[Mutation] = [(_data_key(key), expiry_ms.to_bytes(8, "big") + value)]
    if expiry_ms:
        mutations.append((_index_key(expiry_ms, key), b""))
    return mutations


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class LevelDBStore(StoreContextMixin):
    """A persistent ``KVStore`` in one LevelDB directory, for a single process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sweep_interval: float = 1.0,
        sync: bool = False,
        write_buffer_size: int = DEFAULT_WRITE_BUFFER,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._sweep_interval = check_ttl(sweep_interval)
        self._sync = sync
        self._lock = threading.Lock()
        self._locked = _Guard(self, write=False)  # ``with self._locked as now:``
        self._writing = _Guard(self, write=True)  # the same, after the sweep when it is due
        self._closed = False
        self._channels = Channels()  # publish/listen: this process alone holds the store
        self._db = self._open(self.path, _check_buffer(write_buffer_size))
        self._next_sweep = 0.0
        with self._writing:  # the first expiry sweep
            pass

    def __repr__(self) -> str:
        return f"LevelDBStore({self.path!r}, closed={self._closed})"

    @staticmethod
    def _open(path: str, write_buffer_size: int) -> plyvel.DB:
        try:
            os.makedirs(path, exist_ok=True)
            return plyvel.DB(
                path,
                create_if_missing=True,
                write_buffer_size=write_buffer_size,
                bloom_filter_bits=BLOOM_FILTER_BITS,
            )
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(path) from exc
            raise StoreUnavailable(f"leveldb://{path}", str(exc)) from exc
        except (plyvel.Error, OSError) as exc:
            raise StoreUnavailable(f"leveldb://{path}", str(exc)) from exc

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        raw_key = _data_key(check_key(key))
        with self._locked as now:
            return _unpack(self._db.get(raw_key), now)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raw_keys = [_data_key(check_key(key)) for key in keys]
        with self._locked as now:
            return [_unpack(self._db.get(raw_key), now) for raw_key in raw_keys]

    async def scan(self, prefix: str, *, page_size: int = 500) -> AsyncIterator[tuple[str, bytes]]:
        raw_prefix = _DATA + check_prefix(prefix).encode("utf-8")
        check_page_size(page_size)
        start, include_start = raw_prefix, True
        while True:
            page, last = self._scan_page(start, include_start, _prefix_end(raw_prefix), page_size)
            for item in page:
                yield item
            if last is None:
                return
            start, include_start = last, False
            await asyncio.sleep(0)

    def _scan_page(
        self, start: bytes, include_start: bool, stop: bytes | None, limit: int
    ) -> tuple[list[tuple[str, bytes]], bytes | None]:
        """Read up to ``limit`` records; return the live items and the last raw key read
        (``None`` when the range is exhausted)."""
        page: list[tuple[str, bytes]] = []
        read = 0
        last: bytes | None = None
        with self._locked as now:
            iterator = self._db.iterator(start=start, stop=stop, include_start=include_start)
            with iterator:
                for raw_key, raw in iterator:
                    read, last = read + 1, raw_key
                    value = _unpack(raw, now)
                    if value is not None:
                        page.append((raw_key[1:].decode("utf-8"), value))
                    if read == limit:
                        break
        return page, (last if read == limit else None)

    # -- writes --------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        check_key(key)
        check_value(value)
        check_optional_ttl(ttl)
        with self._writing as now:
            self._apply(_record(key, value, _expiry(ttl, now)))

    async def delete(self, key: str) -> bool:
        raw_key = _data_key(check_key(key))
        with self._writing as now:
            existed = _unpack(self._db.get(raw_key), now) is not None
            self._apply([(raw_key, None)])
            return existed

    async def batch(self, ops: Sequence[BatchOp]) -> None:
        await self.batch_if({}, ops)

    async def batch_if(self, expected: Mapping[str, bytes | None], ops: Sequence[BatchOp]) -> bool:
        return await self.batch_if_get(expected, ops, ()) is not None

    async def batch_if_get(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
        keys: Sequence[str],
    ) -> list[bytes | None] | None:
        conditions, checked = check_expected(expected), check_ops(ops)
        wanted = [_data_key(check_key(key)) for key in keys]
        with self._writing as now:
            if not self._holds(conditions, now):
                return None
            self._write_batch(checked, now)  # writes nothing if it raises
            return [_unpack(self._db.get(key), now) for key in wanted]

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
    ) -> tuple[bool, list[bytes | None]]:
        wanted = [_data_key(check_key(key)) for key in keys]
        conditions, checked = check_expected(expected), check_ops(ops)
        with self._writing as now:
            values = [_unpack(self._db.get(key), now) for key in wanted]
            if not self._holds(conditions, now):
                return False, values
            self._write_batch(checked, now)  # writes nothing if it raises
            return True, values

    def _holds(self, conditions: Mapping[str, bytes | None], now: int) -> bool:
        """Whether every key of ``conditions`` holds its expected value (None: is absent)."""
        return all(
            _unpack(self._db.get(_data_key(key)), now) == value for key, value in conditions.items()
        )

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        check_key(key)
        if expected is not None:
            check_value(expected)
        check_value(new)
        check_optional_ttl(ttl)
        with self._writing as now:
            if _unpack(self._db.get(_data_key(key)), now) != expected:
                return False
            self._apply(_record(key, new, _expiry(ttl, now)))
            return True

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        return await self.compare_and_set(key, None, value, ttl=ttl)

    async def incr(self, key: str, amount: int = 1) -> int:
        check_key(key)
        check_amount(amount)
        with self._writing as now:
            raw = self._db.get(_data_key(key))
            current = _unpack(raw, now)
            total = add_counter(key, 0 if current is None else parse_counter(key, current), amount)
            header = raw[:8] if raw is not None and current is not None else bytes(8)
            self._apply([(_data_key(key), header + format_counter(total))])
            return total

    async def expire(self, key: str, ttl: float) -> bool:
        check_key(key)
        check_ttl(ttl)
        with self._writing as now:
            value = _unpack(self._db.get(_data_key(key)), now)
            if value is None:
                return False
            self._apply(_record(key, value, _expiry(ttl, now)))
            return True

    async def expire_prefix(self, prefix: str, ttl: float | None) -> int:
        raw_prefix = _DATA + check_whole_prefix(prefix).encode("utf-8")
        check_optional_ttl(ttl)
        with self._writing as now:  # expiry 0: never (the index entries left are stale)
            expiry, mutations, count = _expiry(ttl, now), list[Mutation](), 0
            with self._db.iterator(prefix=raw_prefix) as iterator:
                for raw_key, raw in iterator:
                    value = _unpack(raw, now)
                    if value is not None:
                        mutations += _record(raw_key[1:].decode("utf-8"), value, expiry)
                        count += 1
            if mutations:
                self._apply(mutations)
            return count

    # -- logs ----------------------------------------------------------------------------------

    async def log_append(
        self,
        key: str,
        entries: Sequence[bytes],
        *,
        max_len: int | None = None,
        ttl: float | None = None,
        max_age: float | None = None,
    ) -> int:
        check_key(key)
        values = check_log_entries(entries)
        check_max_len(max_len)
        check_optional_ttl(ttl)
        check_optional_ttl(max_age)
        with self._writing as now:
            raw_meta = self._db.get(_LOG_META + key.encode("utf-8"))
            meta = _log_meta(raw_meta, now)
            mutations: list[Mutation] = []
            if meta is None:
                if raw_meta is not None:  # expired, not swept yet: start again at 1
                    mutations += self._log_purge(key, raw_meta)
                meta, oldest = (0, 1, 0), now
            else:
                oldest = _log_oldest(raw_meta or b"")
            expiry, first, last = meta
            new = last + 1
            mutations.append((_log_mark(key, new), now.to_bytes(8, "big")))
            for offset, value in enumerate(values, start=new):
                mutations.append((_log_entry_key(key, offset), value))
            last += len(values)
            keep = first
            if max_len is not None and last - first + 1 > max_len:
                keep = last - max_len + 1
            cutoff = None if max_age is None else now - ttl_to_ms(max_age)
            if cutoff is not None and oldest < cutoff:  # else nothing is old: no read at all
                keep = max(keep, self._log_young(key, cutoff, new))
            if keep > first:
                mutations += _log_range(key, first, keep)
                dropped, oldest = self._log_drop_marks(key, keep, new, now)
                mutations += dropped
                first = keep
            if ttl is not None:
                expiry = _expiry(ttl, now)
            mutations += self._log_meta_record(key, expiry, first, last, oldest)
            self._apply(mutations)
            return last

    async def log_read(
        self, key: str, *, after: int = 0, limit: int = 500
    ) -> list[tuple[int, bytes]]:
        check_key(key)
        check_offset(after)
        check_page_size(limit)
        with self._locked as now:
            meta = _log_meta(self._db.get(_LOG_META + key.encode("utf-8")), now)
            if meta is None:
                return []
            start = _log_entry_key(key, max(after + 1, meta[1]))
            stop = _log_entry_key(key, meta[2] + 1)
            with self._db.iterator(start=start, stop=stop) as iterator:
                items = islice(iterator, limit)
                return [(int.from_bytes(raw_key[-8:], "big"), value) for raw_key, value in items]

    async def log_expire(self, key: str, ttl: float | None) -> bool:
        check_key(key)
        check_optional_ttl(ttl)  # None: expiry 0, never (the index entry left is stale)
        with self._writing as now:
            raw_meta = self._db.get(_LOG_META + key.encode("utf-8"))
            meta = _log_meta(raw_meta, now)
            if meta is None or raw_meta is None:
                return False
            oldest = _log_oldest(raw_meta)
            self._apply(self._log_meta_record(key, _expiry(ttl, now), meta[1], meta[2], oldest))
            return True

    async def log_delete(self, key: str) -> bool:
        check_key(key)
        with self._writing as now:
            raw_meta = self._db.get(_LOG_META + key.encode("utf-8"))
            if raw_meta is None:
                return False
            self._apply(self._log_purge(key, raw_meta))
            return _log_meta(raw_meta, now) is not None

    async def sweep(self) -> int:
        """Delete every expired key now; return how many were deleted."""
        with self._locked as now:
            return self._sweep(now)

    async def publish(self, channel: str, message: bytes) -> int:
        check_key(channel)
        check_value(message)
        with self._locked:
            return self._channels.publish(channel, message)

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        check_key(channel)
        with self._locked:  # refuses a closed store
            messages = self._channels.listen(channel)
        async for message in messages:
            yield message

    def compaction_stats(self) -> str:
        """LevelDB's own table of its levels: files, size, and the time, bytes read and bytes
        written compacting into each (``leveldb.stats``)."""
        with self._locked:
            return bytes(self._db.get_property(b"leveldb.stats") or b"").decode()

    async def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._channels.close()
                self._db.close()
                logger.debug("closed LevelDB store at %s", self.path)

    # -- internals -----------------------------------------------------------------------------

    def _apply(self, mutations: list[Mutation]) -> None:
        with self._db.write_batch(transaction=True, sync=self._sync) as batch:
            for raw_key, raw_value in mutations:
                if raw_value is None:
                    batch.delete(raw_key)
                else:
                    batch.put(raw_key, raw_value)

    def _write_batch(self, ops: list[BatchOp], now: int) -> None:
        """Write a batch's operations in one LevelDB write, straight into its write batch
        (which writes nothing if an ``Incr`` raises). An ``Incr`` adds to the record the
        batch's earlier operations left (else the stored one) and keeps its expiry header, as
        ``incr``."""
        written: dict[bytes, bytes | None] = {}  # data key -> the record the batch gave it
        with self._db.write_batch(transaction=True, sync=self._sync) as batch:
            for op in ops:
                if isinstance(op, Publish):
                    continue  # sent once written
                raw_key = _data_key(op.key)
                if isinstance(op, Put):  # as ``_record``, the data key encoded once
                    expiry = 0 if op.ttl is None else _expiry(op.ttl, now)
                    written[raw_key] = record = expiry.to_bytes(8, "big") + op.value
                    batch.put(raw_key, record)
                    if expiry:
                        batch.put(_index_key(expiry, op.key), b"")
                elif isinstance(op, Delete):
                    written[raw_key] = None
                    batch.delete(raw_key)
                else:
                    raw = written[raw_key] if raw_key in written else self._db.get(raw_key)
                    current = _unpack(raw, now)
                    header = raw[:8] if raw is not None and current is not None else bytes(8)
                    written[raw_key] = counter = header + add_batch_counter(
                        op.key, current, op.amount
                    )
                    batch.put(raw_key, counter)
        for notice in published(ops):
            self._channels.publish(notice.channel, notice.message)

    def _log_meta_record(
        self, key: str, expiry: int, first: int, last: int, oldest: int
    ) -> list[Mutation]:
        numbers = (expiry, first, last, oldest)
        meta = b"".join(number.to_bytes(8, "big") for number in numbers)
        mutations: list[Mutation] = [(_LOG_META + key.encode("utf-8"), meta)]
        if expiry:
            mutations.append((_index_key(expiry, "\x00" + key), b""))
        return mutations

    def _log_purge(self, key: str, raw_meta: bytes) -> list[Mutation]:
        """The mutations that delete a log (its meta record, every entry and time mark)."""
        mutations: list[Mutation] = [(_LOG_META + key.encode("utf-8"), None)]
        for prefix in (_log_prefix(key), _log_mark_prefix(key)):
            with self._db.iterator(prefix=prefix, include_value=False) as iterator:
                mutations += [(raw_key, None) for raw_key in iterator]
        return mutations

    def _log_young(self, key: str, cutoff_ms: int, new: int) -> int:
        """The first offset of the log appended at ``cutoff_ms`` or later (``new``, the first
        one being appended, if none): the first time mark not older than the cutoff. Entries
        before the oldest mark (written without marks) count as old. Called only when the meta
        record says the first entry is old; reads the old marks (which the trim then deletes,
        but the one dating the first entry kept) and one more."""
        with self._db.iterator(prefix=_log_mark_prefix(key)) as iterator:
            for raw_key, raw_time in iterator:
                if int.from_bytes(raw_time, "big") >= cutoff_ms:
                    return int.from_bytes(raw_key[-8:], "big")
        return new

    def _log_drop_marks(
        self, key: str, first: int, new: int, now: int
    ) -> tuple[list[Mutation], int]:
        """Deletions of the time marks no entry from ``first`` on needs any more (every mark
        below ``first``, but the newest when ``first`` has no mark of its own, as that one dates
        the entries from ``first`` on), and when the entry at ``first`` was appended (``now``
        when it is being appended: ``first`` is ``new`` or beyond)."""
        if first >= new:
            below = self._log_marks(key, new)  # every stored mark: all older than ``new``
            return [(raw_key, None) for raw_key, _ in below], now
        own = self._db.get(_log_mark(key, first))
        below = self._log_marks(key, first)
        if own is None and below:
            dating, below = below[0], below[1:]
            own = dating[1]
        return [(raw_key, None) for raw_key, _ in below], int.from_bytes(own or b"", "big")

    def _log_marks(self, key: str, stop: int) -> list[tuple[bytes, bytes]]:
        """The stored time marks of the log below offset ``stop``, newest first."""
        with self._db.iterator(
            start=_log_mark_prefix(key), stop=_log_mark(key, stop), reverse=True
        ) as iterator:
            return list(iterator)

    def _sweep_log(self, index_key: bytes) -> list[Mutation]:
        """Delete the log an expiry-index entry names, if that expiry is still its own."""
        key = index_key[10:].decode("utf-8")
        raw_meta = self._db.get(_LOG_META + index_key[10:])
        if raw_meta is not None and raw_meta[:8] == index_key[1:9]:
            return self._log_purge(key, raw_meta)
        return []

    def _sweep_due(self) -> None:
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval
            self._sweep(_now_ms())

    def _sweep(self, now_ms: int) -> int:
        """Delete keys whose expiry has passed (up to a limit per call); return the count.
        At the limit, more may be due: the next write sweeps again, not a sweep interval
        later, so keys that expire faster than the limit per interval do not pile up."""
        stop = _INDEX + (now_ms + 1).to_bytes(8, "big")
        mutations: list[Mutation] = []
        removed = 0
        with self._db.iterator(start=_INDEX, stop=stop, include_value=False) as iterator:
            for index_key in iterator:
                if len(mutations) >= _SWEEP_LIMIT:
                    self._next_sweep = 0.0
                    break
                mutations.append((index_key, None))
                if index_key[9:10] == b"\x00":
                    mutations += self._sweep_log(index_key)
                    continue
                data_key = _DATA + index_key[9:]
                raw = self._db.get(data_key)
                if raw is not None and raw[:8] == index_key[1:9]:
                    mutations.append((data_key, None))
                    removed += 1
        if mutations:
            self._apply(mutations)
            logger.debug("swept %d expired keys from %s", removed, self.path)
        return removed


class _Guard:
    """What every operation of a ``LevelDBStore`` runs under: its lock held, a closed store
    refused (``StoreClosed``), plyvel's errors raised as ``StoreUnavailable``; for a write, the
    expiry sweep run first when it is due. Entering gives the time (ms since the epoch). A
    class rather than a ``contextmanager`` generator: a step's commit passes through it several
    times, and a generator costs three times as much."""

    __slots__ = ("_store", "_write")

    def __init__(self, store: LevelDBStore, *, write: bool) -> None:
        self._store, self._write = store, write

    def __enter__(self) -> int:
        store = self._store
        store._lock.acquire()
        try:
            if store._closed:
                raise StoreClosed(f"LevelDB store at {store.path}")
            if self._write:
                store._sweep_due()
        except BaseException as exc:
            store._lock.release()
            if isinstance(exc, plyvel.Error):
                raise _unavailable(store, exc) from exc
            raise
        return _now_ms()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        store._lock.release()
        if isinstance(exc, plyvel.Error):
            raise _unavailable(store, exc) from exc


def _unavailable(store: LevelDBStore, exc: plyvel.Error) -> StoreUnavailable:
    return StoreUnavailable(f"leveldb://{store.path}", str(exc))
