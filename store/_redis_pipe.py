"""``ScriptPipe``: the script calls made in one turn of the event loop, sent as one pipeline.

``RedisStore`` does every write (and its atomic reads) as a Lua script. A worker running several
steps at once makes several such calls at nearly the same moment; sent one by one, through
redis-py's client, each pays its own packing, connection checkout, socket write and read wake-up
(about 200 µs of CPU each on a 2-core machine). The pipe queues the calls made before the event
loop's next turn and then sends them together, on one connection, in one write (``EVALSHA`` each,
so each script is still atomic in Redis, and they run in the order they were called), then
hands each caller its own reply: an error reply fails only its own call. A script Redis does not
hold yet (``NOSCRIPT``: first use, or after a restart or ``SCRIPT FLUSH``) is loaded and its
calls sent again.

The first call of a turn yields once, so that the turn's other calls can queue, and then sends
them. Alone, it is sent from its caller's task, as a plain call would be; with others, from a
task of its own, so that a caller that stops waiting (cancelled) does not stop the batch it is in.
A batch shares one deadline (the store's ``socket_timeout``, waiting for a connection included);
if it passes, or the connection fails, every call of the batch fails with that error and the
connection is dropped, as a single call's would be: its scripts may or may not have run (an
answer lost), which callers of a store already allow for.

The pipe writes its commands in Redis's protocol (RESP) itself (``_resp``): their arguments are
bytes, text and integers only, and redis-py's general packer cost a step's commit more CPU than
the packing of its operations did (8 µs against 3).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["ScriptPipe"]


@dataclass(frozen=True)
class _Call:
    script: str
    keys: Sequence[bytes]
    args: Sequence[str | bytes | int]
    reply: asyncio.Future[Any]


class ScriptPipe:
    """Runs the named ``scripts``, coalescing the calls of one event-loop turn into one round
    trip."""

    def __init__(
        self, client: aioredis.Redis, scripts: Mapping[str, str], deadline: float | None
    ) -> None:
        self._pool = client.connection_pool
        self._sources = {name: source.encode() for name, source in scripts.items()}
        self._shas = {
            name: hashlib.sha1(code).hexdigest().encode() for name, code in self._sources.items()
        }
        self._deadline = deadline
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(
        self, script: str, keys: Sequence[bytes], args: Sequence[str | bytes | int]
    ) -> Any:
        """Run ``script`` on ``keys`` with ``args``: its reply, or the error Redis or the
        connection gave."""
        call = _Call(script, keys, args, asyncio.get_running_loop().create_future())
        self._queued.append(call)
        if len(self._queued) > 1:
            return await call.reply  # the first call of this turn sends it
        try:
            await asyncio.sleep(0)  # the other calls of this turn queue meanwhile
        except asyncio.CancelledError:
            self._send_apart([queued for queued in self._take() if queued is not call])
            raise
        batch = self._take()
        if len(batch) == 1:  # alone: sent from this task, as a plain call would be
            async with asyncio.timeout(self._deadline):
                (reply,) = await self._on_a_connection(batch)
            if isinstance(reply, BaseException):
                raise reply
            return reply
        self._send_apart(batch)
        return await call.reply

    async def close(self) -> None:
        """Wait for the batches on their way (their callers get their replies)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _take(self) -> list[_Call]:
        batch, self._queued = self._queued, []
        return batch

    def _send_apart(self, batch: list[_Call]) -> None:
        """Send ``batch`` from a task of its own: a caller that stops waiting does not stop
        it."""
        if batch:
            sending = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                replies = await self._on_a_connection(batch)
        except BaseException as error:  # every caller gets it; then this batch is over
            for call in batch:
                _settle(call.reply, error)
            return
        for call, reply in zip(batch, replies, strict=True):
            _settle(call.reply, reply)

    async def _on_a_connection(self, batch: list[_Call]) -> list[Any]:
        connection: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies = await self._round_trip(connection, batch)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                await self._load(connection, {batch[i].script for i in unknown})
                again = await self._round_trip(connection, [batch[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
            return replies
        except BaseException:
            await connection.disconnect()  # a reply may be half read: never reuse it
            raise
        finally:
            await self._pool.release(connection)

    async def _round_trip(self, connection: AbstractConnection, batch: list[_Call]) -> list[Any]:
        chunks: list[bytes] = []
        for call in batch:
            sha, keys = self._shas[call.script], call.keys
            _resp(chunks, (b"EVALSHA", sha, len(keys), *keys, *call.args))
        await connection.send_packed_command(b"".join(chunks))
        return [await _reply(connection) for _ in batch]

    async def _load(self, connection: AbstractConnection, scripts: set[str]) -> None:
        for script in sorted(scripts):
            await connection.send_command("SCRIPT", "LOAD", self._sources[script])
            await connection.read_response()


def _resp(chunks: list[bytes], command: Sequence[str | bytes | int]) -> None:
    """Append ``command`` to ``chunks`` in RESP, its arguments as redis-py's encoder writes
    them (text as UTF-8, an int in decimal)."""
    chunks.append(b"*%d\r\n" % len(command))
    for arg in command:
        if type(arg) is str:
            arg = arg.encode("utf-8")
        elif type(arg) is int:
            arg = b"%d" % arg
        elif type(arg) is not bytes:
            raise TypeError(f"script arguments are bytes, str or int, not {type(arg).__name__}")
        chunks.append(b"$%d\r\n%s\r\n" % (len(arg), arg))


async def _reply(connection: AbstractConnection) -> Any:
    """The next reply; an error reply is returned (it belongs to its call), not raised."""
    try:
        return await connection.read_response()
    except ResponseError as error:
        return error


def _settle(reply: asyncio.Future[Any], outcome: Any) -> None:
    if reply.done():  # its caller stopped waiting
        return
    if isinstance(outcome, asyncio.CancelledError):
        reply.cancel()
    elif isinstance(outcome, BaseException):
        reply.set_exception(outcome)
    else:
        reply.set_result(outcome)
