"""``RedisStore``'s script pipe (``store._redis_pipe``): the script calls of one event-loop turn
go to Redis in one round trip, each caller gets its own reply or error, on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from store import Incr, Put, RedisStore, StoreUnavailable


@pytest.fixture
async def redis_store(redis_prefix: tuple[str, str]) -> AsyncIterator[RedisStore]:
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix)
    yield store
    await store.close()


def count_round_trips(store: RedisStore) -> list[int]:
    """The number of calls in each round trip the store's pipe makes from now on."""
    sizes: list[int] = []
    pipe = store._scripts
    round_trip = pipe._round_trip

    async def counted(connection: Any, batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await round_trip(connection, batch)

    pipe._round_trip = counted  # type: ignore[method-assign]  # the real one, observed
    return sizes


async def test_concurrent_writes_share_one_round_trip_and_each_gets_its_own_reply(
    redis_store: RedisStore,
) -> None:
    await redis_store.batch_if({}, [Put("warm", b"")])  # the index swept, the script loaded
    sizes = count_round_trips(redis_store)
    results = await asyncio.gather(
        *(redis_store.batch_if({f"k{i}": None}, [Put(f"k{i}", str(i).encode())]) for i in range(8)),
        redis_store.batch_if({"k0": None}, [Put("k0", b"late")]),  # queued after k0's write
    )
    assert results == [True] * 8 + [False]
    assert sizes == [9]
    assert await redis_store.get_many([f"k{i}" for i in range(8)]) == [
        str(i).encode() for i in range(8)
    ]


async def test_an_error_reply_fails_its_own_call_only(redis_store: RedisStore) -> None:
    await redis_store.batch([Put("text", b"not a number")])  # its script loaded: one trip
    sizes = count_round_trips(redis_store)
    results = await asyncio.gather(
        redis_store.batch([Put("a", b"1")]),
        redis_store.batch([Incr("text")]),
        redis_store.batch([Put("b", b"2")]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert sizes == [3]
    assert await redis_store.get_many(["a", "b", "text"]) == [b"1", b"2", b"not a number"]


async def test_scripts_redis_lost_are_loaded_again(
    redis_store: RedisStore, redis_prefix: tuple[str, str]
) -> None:
    await redis_store.put("before", b"1")
    raw = aioredis.Redis.from_url(redis_prefix[0])
    try:
        await raw.script_flush()  # as after a restart of Redis
    finally:
        await raw.aclose()
    results = await asyncio.gather(
        redis_store.put("after", b"2"), redis_store.batch_if({"x": None}, [Put("x", b"3")])
    )
    assert results == [None, True]
    assert await redis_store.get_many(["before", "after", "x"]) == [b"1", b"2", b"3"]


async def test_a_caller_that_stops_waiting_leaves_the_others_their_replies(
    redis_store: RedisStore,
) -> None:
    first = asyncio.ensure_future(redis_store.put("first", b"1"))
    second = asyncio.ensure_future(redis_store.put("second", b"2"))
    await asyncio.sleep(0)  # both queued, not yet sent
    first.cancel()
    await second
    assert second.result() is None
    assert await redis_store.get("second") == b"2"


async def test_a_batch_on_a_server_that_never_answers_fails_every_call_at_its_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads whatever comes, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
    try:
        async with asyncio.timeout(5):
            results = await asyncio.gather(
                store.put("a", b"1"), store.put("b", b"2"), return_exceptions=True
            )
        assert all(isinstance(result, StoreUnavailable) for result in results)
    finally:
        await store.close()
        server.close()
