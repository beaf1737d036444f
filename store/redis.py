"""``RedisStore``: a ``KVStore`` on Redis, shared by many processes and hosts.

Every key is stored as ``prefix + key`` (``prefix`` from the URL query ``?prefix=`` or the keyword
argument), so several applications or test runs can share one Redis; ``scan`` strips the prefix.
Two sorted sets per prefix, named ``prefix + "\\x00keys"`` and ``prefix + "\\x00ttl"`` (keys
cannot contain NUL, so they never clash with data), index the keys for ordered, paged scans
(``ZRANGEBYLEX``) and record expiry times so that a periodic sweep can drop expired keys from the
index. A log is a Redis stream named ``prefix + "\\x00log:" + key`` whose entry ids are
``<offset>-0`` (appended by one Lua script, so offsets are atomic across processes); it is not in
the key index, so ``scan`` never sees it, and it expires with ``PEXPIRE``. ``publish`` and
``listen`` use the pub/sub channel ``prefix + "\\x00channel:" + channel``.

Writes and atomics are Lua scripts (atomic in Redis; see :mod:`store._redis_scripts`); the script
calls made in one turn of the event loop go to Redis together, in one round trip
(:mod:`store._redis_pipe`). ``incr`` is ``INCRBY`` and TTLs are ``PX``. Values are bytes
(``decode_responses=False``). Connect/read timeouts default to 2 s / 5 s and redis-py's automatic
retry is off, so an unreachable Redis raises :class:`StoreUnavailable` within seconds and a
non-idempotent ``incr`` is never sent twice; retry at the caller, where the intent is known. Needs
standalone Redis or Sentinel (not Cluster), Redis >= 6.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from store import _redis_scripts as scripts
from store._common import (
    StoreContextMixin,
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
    ttl_to_ms,
)
from store._redis_pipe import ScriptPipe
from store.base import BatchOp, Incr, Publish, Put
from store.errors import InvalidStoreURL, StoreClosed, StoreError, StoreUnavailable, mask_url

__all__ = ["RedisStore", "check_redis_url", "split_prefix", "tls_url"]

logger = logging.getLogger(__name__)

_SWEEP_LIMIT = 1000
_PAGE = 500  # keys of the index an ``expire_prefix`` call gives their expiry
_LISTEN_TICK = 1.0  # how long a listener waits for a message before it checks the store is open
_CLOSED = object()
_DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "health_check_interval": 15,
}


def split_prefix(url: str) -> tuple[str, str | None]:
    """Return ``url`` without its ``prefix`` query parameter, and that parameter (if any)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if len(prefixes) > 1:
        raise InvalidStoreURL(url, "the prefix parameter is given more than once")
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), (prefixes[0] if prefixes else None)


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL whose database is not a number (``redis://host/notadb`` would
    otherwise quietly use DB 0) or whose scheme is not ``redis``/``rediss``/``unix``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidStoreURL(url, "use redis://, rediss:// (TLS) or unix://")
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database and not database.isdigit():
        raise InvalidStoreURL(
            url, f"database {database!r} is not a number (redis://host:6379/0 is DB 0)"
        )
    for name, value in parse_qsl(parts.query):
        if name == "db" and not value.isdigit():
            raise InvalidStoreURL(url, f"db={value!r} is not a number")


def tls_url(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``ssl=True`` (or any ``ssl_*`` option) on a ``redis://`` URL means TLS: the URL becomes
    ``rediss://`` and ``ssl`` is dropped (redis-py would fail later with a ``TypeError``)."""
    parts = urlsplit(url)
    wants_tls = options.get("ssl") is True or any(
        name.startswith("ssl_") for name in options if options[name] is not None
    )
    if parts.scheme != "redis" or not wants_tls:
        return url, options
    rest = {name: value for name, value in options.items() if name != "ssl"}
    return urlunsplit(parts._replace(scheme="rediss")), rest


def _ttl_arg(ttl: float | None) -> str:
    return "" if ttl is None else str(ttl_to_ms(ttl))


_LENGTH = struct.Struct(">I").pack


def _packed(*parts: bytes) -> bytes:
    """Length-prefixed byte strings, as the batch scripts' ``struct.unpack('>I4c0')`` reads."""
    chunks: list[bytes] = []
    for part in parts:
        chunks += (_LENGTH(len(part)), part)
    return b"".join(chunks)


def _pack_ops(ops: Sequence[BatchOp]) -> bytes:
    """The operations of a batch, packed into one script argument (``_redis_scripts``): the
    pieces of every operation joined once (joining each operation's first cost a commit
    more than the rest of its packing)."""
    chunks: list[bytes] = []
    for op in ops:
        if isinstance(op, Publish):
            channel = op.channel.encode("utf-8")
            chunks += (b"B", _LENGTH(len(channel)), channel, _LENGTH(len(op.message)), op.message)
            continue
        key = op.key.encode("utf-8")
        if isinstance(op, Put):
            ttl = b"" if op.ttl is None else b"%d" % ttl_to_ms(op.ttl)
            value = op.value
            chunks += (b"P", _LENGTH(len(key)), key, _LENGTH(len(value)), value)
            chunks += (_LENGTH(len(ttl)), ttl)
        elif isinstance(op, Incr):
            amount = b"%d" % op.amount
            chunks += (b"I", _LENGTH(len(key)), key, _LENGTH(len(amount)), amount)
        else:
            chunks += (b"D", _LENGTH(len(key)), key)
    return b"".join(chunks)


def _has_incr(ops: Sequence[BatchOp]) -> str:
    """The scripts' ``has_incr`` argument: only a batch with an ``Incr`` is checked first."""
    return "1" if any(isinstance(op, Incr) for op in ops) else ""


def _pack_conditions(conditions: Mapping[str, bytes | None]) -> bytes:
    chunks: list[bytes] = []
    for key, value in conditions.items():
        raw = key.encode("utf-8")
        expected = b"" if value is None else value
        flag = b"0" if value is None else b"1"
        chunks += (_LENGTH(len(raw)), raw, flag, _LENGTH(len(expected)), expected)
    return b"".join(chunks)


def _lex_range(prefix: bytes) -> tuple[bytes, bytes]:
    """``ZRANGEBYLEX`` bounds covering every member that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"-", b"+"
    return b"[" + prefix, b"(" + stripped[:-1] + bytes([stripped[-1] + 1])


class _BoundedPool(aioredis.ConnectionPool):
    """redis-py's connection pool with at most ``max_connections`` connections, where a
    caller waits up to ``timeout`` seconds for a free one (as ``BlockingConnectionPool``), but
    at the cost of a semaphore when one is free: the blocking pool takes a condition, a lock
    and a timer, and records metrics, around every command -- ~10 % of a worker's CPU.
    Connections are still checked before use (``ensure_connection``: connected, nothing
    unread), and dropped on errors by the client as before."""

    def __init__(self, *, timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._free = asyncio.Semaphore(self.max_connections)
        self._wait = timeout

    async def get_connection(self, *_: Any, **__: Any) -> aioredis.Connection:  # type: ignore[override]
        if self._free.locked():
            try:
                await asyncio.wait_for(self._free.acquire(), self._wait)
            except TimeoutError as exc:
                raise RedisConnectionError("No connection available.") from exc
        else:
            await self._free.acquire()  # free: taken at once
        connection = None
        try:
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
            await self.ensure_connection(connection)
        except BaseException:
            if connection is not None:
                await self.release(connection)
            else:
                self._free.release()
            raise
        return cast("aioredis.Connection", connection)

    async def release(self, connection: AbstractConnection) -> None:
        if connection not in self._in_use_connections:
            return  # released already (or from before a reset)
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():  # type: ignore[no-untyped-call]
            await connection.disconnect()
        self._available_connections.append(connection)
        self._free.release()


class RedisStore(StoreContextMixin):
    """A ``KVStore`` on Redis. ``url`` is a redis-py URL (``redis://``, ``rediss://``).

    ``redis_options`` go to the connection pool (TLS settings, timeouts); ``max_connections``
    (default 64) bounds the pool and ``pool_timeout`` (default 10 s) is how long a caller waits
    for a free connection. ``socket_timeout`` (default 5 s; also a URL parameter) is the
    deadline of each store call as a whole, waiting for a connection included: redis-py's own
    timers, one per send (a task) and one per read, cost more than the commit they guard.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        sweep_interval: float = 1.0,
        **redis_options: Any,
    ) -> None:
        check_redis_url(url)
        client_url, url_prefix = split_prefix(url)
        client_url, redis_options = tls_url(client_url, redis_options)
        if prefix is not None and url_prefix is not None and prefix != url_prefix:
            raise InvalidStoreURL(url, f"prefix {url_prefix!r} conflicts with prefix={prefix!r}")
        self.url = mask_url(url)
        self.prefix = check_prefix(prefix if prefix is not None else (url_prefix or ""))
        self._raw_prefix = self.prefix.encode("utf-8")
        self._index_keys = [self._raw_prefix + b"\x00keys", self._raw_prefix + b"\x00ttl"]
        self._sweep_interval = check_ttl(sweep_interval)
        self._next_sweep = 0.0
        self._closed = False
        self._client = self._connect(url, client_url, redis_options)
        self._deadline = self._take_socket_timeout(self._client)
        self._scripts = ScriptPipe(self._client, scripts.ALL, self._deadline)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r}, closed={self._closed})"

    @staticmethod
    def _connect(url: str, client_url: str, options: dict[str, Any]) -> aioredis.Redis:
        if options.get("decode_responses"):
            raise ValueError("RedisStore values are bytes: decode_responses must stay False")
        settings = {**_DEFAULT_OPTIONS, "retry": Retry(NoBackoff(), 0), **options}
        try:
            # Callers wait for a free connection (up to pool_timeout) instead of failing with
            # "Too many connections" under a burst of concurrency.
            pool = _BoundedPool.from_url(
                client_url,
                max_connections=settings.pop("max_connections", 64),
                timeout=settings.pop("pool_timeout", 10.0),
                **settings,
                decode_responses=False,
            )
            return aioredis.Redis(connection_pool=pool)
        except (ValueError, TypeError) as exc:
            raise InvalidStoreURL(url, str(exc)) from exc

    @staticmethod
    def _take_socket_timeout(client: aioredis.Redis) -> float | None:
        """The pool's ``socket_timeout``, which ``_call`` applies to whole calls from now on
        (the connections get none)."""
        kwargs = client.connection_pool.connection_kwargs
        deadline, kwargs["socket_timeout"] = kwargs.get("socket_timeout"), None
        return None if deadline is None else float(deadline)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self._client.get, self._key(key))
        return cast("bytes | None", value)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raw_keys = [self._key(key) for key in keys]
        if not raw_keys:
            self._check_open()
            return []
        values = await self._call(self._client.mget, raw_keys)
        return cast("list[bytes | None]", values)

    async def scan(self, prefix: str, *, page_size: int = 500) -> AsyncIterator[tuple[str, bytes]]:
        raw_prefix = check_prefix(prefix).encode("utf-8")
        check_page_size(page_size)
        low, high = _lex_range(raw_prefix)
        while True:
            read, last, items = await self._run("SCAN_PAGE", low, high, page_size)
            for i in range(0, len(items), 2):
                yield items[i].decode("utf-8"), items[i + 1]
            if read < page_size:
                return
            low = b"(" + last

    # -- writes --------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        args = (check_key(key), check_value(value), _ttl_arg(check_optional_ttl(ttl)))
        await self._write("PUT", *args)

    async def delete(self, key: str) -> bool:
        return bool(await self._write("DELETE", check_key(key)))

    async def batch(self, ops: Sequence[BatchOp]) -> None:
        checked = check_ops(ops)
        if checked:
            await self._write("BATCH", _pack_ops(checked), _has_incr(checked))
        else:
            self._check_open()

    async def batch_if(self, expected: Mapping[str, bytes | None], ops: Sequence[BatchOp]) -> bool:
        return await self.batch_if_get(expected, ops, ()) is not None

    async def batch_if_get(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
        keys: Sequence[str],
    ) -> list[bytes | None] | None:
        conditions, checked = check_expected(expected), check_ops(ops)
        wanted = [check_key(key).encode("utf-8") for key in keys]
        packed = (_pack_conditions(conditions), _packed(*wanted), _pack_ops(checked))
        reply = await self._write("BATCH_IF", *packed, _has_incr(checked))
        if not reply[0]:
            return None
        return [reply[i] for i in range(1, len(wanted) + 1)]

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[BatchOp],
    ) -> tuple[bool, list[bytes | None]]:
        wanted = [check_key(key).encode("utf-8") for key in keys]
        conditions, checked = check_expected(expected), check_ops(ops)
        packed = (_packed(*wanted), _pack_conditions(conditions), _pack_ops(checked))
        reply = await self._write("GET_BATCH_IF", *packed, _has_incr(checked))
        return bool(reply[0]), [reply[i] for i in range(1, len(wanted) + 1)]

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        check_key(key)
        has_expected = "0" if expected is None else "1"
        expected_arg = b"" if expected is None else check_value(expected)
        args = (key, has_expected, expected_arg, check_value(new))
        return bool(await self._write("COMPARE_AND_SET", *args, _ttl_arg(check_optional_ttl(ttl))))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        return await self.compare_and_set(key, None, value, ttl=ttl)

    async def incr(self, key: str, amount: int = 1) -> int:
        args = (check_key(key), str(check_amount(amount)))
        return int(await self._write("INCR", *args))

    async def expire(self, key: str, ttl: float) -> bool:
        args = (check_key(key), str(ttl_to_ms(check_ttl(ttl))))
        return bool(await self._write("EXPIRE", *args))

    async def expire_prefix(self, prefix: str, ttl: float | None) -> int:
        low, high = _lex_range(check_whole_prefix(prefix).encode("utf-8"))
        ttl_ms, total = _ttl_arg(check_optional_ttl(ttl)), 0
        while True:  # a page of the key index per call, as ``scan``
            read, last, count = await self._write("EXPIRE_PAGE", low, high, _PAGE, ttl_ms)
            total += int(count)
            if read < _PAGE:
                return total
            low = b"(" + last

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
        log_key = self._log_key(key)
        values = check_log_entries(entries)
        limit = check_max_len(max_len)
        args: list[str | bytes] = ["" if limit is None else str(limit)]
        args += [_ttl_arg(check_optional_ttl(ttl)), _ttl_arg(check_optional_ttl(max_age))]
        args += values
        with self._errors():  # within the deadline of the round trip the call goes in
            return int(await self._scripts.call("LOG_APPEND", [log_key], args))

    async def log_read(
        self, key: str, *, after: int = 0, limit: int = 500
    ) -> list[tuple[int, bytes]]:
        log_key = self._log_key(key)
        start = f"{check_offset(after) + 1}-0"
        count = check_page_size(limit)
        items = await self._call(self._client.xrange, log_key, start, "+", count=count)
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", items)
        return [(int(entry_id.split(b"-")[0]), fields[b"v"]) for entry_id, fields in entries]

    async def log_expire(self, key: str, ttl: float | None) -> bool:
        log_key, checked = self._log_key(key), check_optional_ttl(ttl)
        if checked is None:
            return bool(await self._call(self._persist, log_key))
        return bool(await self._call(self._client.pexpire, log_key, ttl_to_ms(checked)))

    async def _persist(self, raw_key: bytes) -> bool:
        """Take back the expiry of ``raw_key``; whether it exists (``PERSIST`` alone does not
        tell a key without an expiry from an absent one)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.exists(raw_key)
            pipe.persist(raw_key)
            exists, _ = await pipe.execute()
        return bool(exists)

    async def log_delete(self, key: str) -> bool:
        log_key = self._log_key(key)
        return bool(await self._call(self._client.delete, log_key))

    async def sweep(self) -> int:
        """Drop expired keys from the key index now (up to ``_SWEEP_LIMIT`` entries of the
        expiry index); return how many were dropped. When that many were due, more may be:
        the next write sweeps again, not a ``sweep_interval`` later, so a store whose keys
        expire faster than the limit per interval still keeps its indexes bounded."""
        removed, looked_at = await self._run("SWEEP", _SWEEP_LIMIT)
        if looked_at >= _SWEEP_LIMIT:
            self._next_sweep = 0.0
        if removed:
            logger.debug("swept %d expired keys under prefix %r", removed, self.prefix)
        return int(removed)

    async def publish(self, channel: str, message: bytes) -> int:
        check_value(message)
        return int(await self._run("PUBLISH", check_key(channel), message))

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        """``SUBSCRIBE`` on a connection of its own, held while the iteration lasts."""
        name = self._channel(channel)
        self._check_open()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await self._call(pubsub.subscribe, name)
            while (found := await self._next_message(pubsub)) is not _CLOSED:
                if found is not None and found["type"] == "message":
                    yield found["data"]
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def _next_message(self, pubsub: PubSub) -> Any:
        """The next message, None if none came within ``_LISTEN_TICK`` seconds, ``_CLOSED`` once
        the store is closed (its connections then drop: not an outage)."""
        try:
            with self._errors(check_open=False):
                found = await pubsub.get_message(timeout=_LISTEN_TICK)
        except StoreUnavailable:
            if self._closed:
                return _CLOSED
            raise
        return _CLOSED if self._closed else found

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._errors(check_open=False):
                await self._scripts.close()
                await self._client.aclose()

    # -- internals -----------------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._raw_prefix + check_key(key).encode("utf-8")

    def _log_key(self, key: str) -> bytes:
        return self._raw_prefix + b"\x00log:" + check_key(key).encode("utf-8")

    def _channel(self, channel: str) -> bytes:
        return self._raw_prefix + b"\x00channel:" + check_key(channel).encode("utf-8")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"Redis store {self.url} (prefix {self.prefix!r})")

    @contextmanager
    def _errors(self, *, check_open: bool = True) -> Iterator[None]:
        """Check the store is open and translate redis-py errors into store errors."""
        if check_open:
            self._check_open()
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(self.url, str(exc) or type(exc).__name__) from exc
        except ResponseError as exc:
            if "not an integer" in str(exc) or "overflow" in str(exc):  # INCRBY, batch Incr
                raise ValueError(f"incr failed: {str(exc).partition(' script:')[0]}") from exc
            raise StoreError(f"Redis store {self.url} failed: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"Redis store {self.url} failed: {exc}") from exc

    async def _call(self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """One redis-py call: the store open, within the store's deadline (the connection is
        dropped if it passes: redis-py disconnects a command interrupted halfway), and its
        errors translated (a passed deadline is a ``TimeoutError``: ``StoreUnavailable``)."""
        with self._errors():
            async with asyncio.timeout(self._deadline):
                return await command(*args, **kwargs)

    async def _run(self, script: str, *args: str | bytes | int) -> Any:
        args_with_prefix = [self._raw_prefix, *args]
        with self._errors():  # within the deadline of the round trip the call goes in
            return await self._scripts.call(script, self._index_keys, args_with_prefix)

    async def _write(self, script: str, *args: str | bytes | int) -> Any:
        """Run a write script, first sweeping expired keys from the index when that is due."""
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval
            await self.sweep()
        return await self._run(script, *args)
