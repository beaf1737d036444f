"""Redis-specific behaviour: prefixes, the scan index, unreachable servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from store_test_helpers import delete_redis_prefix, new_redis_prefix
from support import assert_eventually

from store import InvalidStoreURL, Put, RedisStore, StoreUnavailable, open_store


async def test_an_unreachable_redis_raises_store_unavailable_quickly_with_the_password_masked() -> (
    None
):
    store = open_store("redis://:secret@127.0.0.1:1/0?prefix=app:")
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.get("k")
    finally:
        await store.close()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "secret" not in message
    assert "redis://:***@127.0.0.1:1/0" in message
    assert caught.value.url == "redis://:***@127.0.0.1:1/0?prefix=app:"
    assert caught.value.__cause__ is not None


async def test_writes_to_an_unreachable_redis_raise_store_unavailable() -> None:
    store = RedisStore("redis://user:pw@127.0.0.1:1/0")
    try:
        with pytest.raises(StoreUnavailable, match=r"redis://user:\*\*\*@127\.0\.0\.1:1/0"):
            await store.incr("n")
    finally:
        await store.close()


async def test_keys_are_stored_under_the_prefix_and_scan_strips_it(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    store = open_store(f"{url}?prefix={prefix}")
    raw = aioredis.Redis.from_url(url)
    try:
        await store.put("job:1", b"v")
        assert await raw.get(f"{prefix}job:1") == b"v"
        assert [item async for item in store.scan("job:")] == [("job:1", b"v")]
    finally:
        await store.close()
        await raw.aclose()


async def test_stores_with_different_prefixes_do_not_see_each_other(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    other_prefix = new_redis_prefix()
    mine, theirs = RedisStore(url, prefix=prefix), RedisStore(url, prefix=other_prefix)
    try:
        await mine.put("k", b"mine")
        await theirs.put("k", b"theirs")
        await theirs.incr("n")
        assert await mine.get("k") == b"mine"
        assert [item async for item in mine.scan("")] == [("k", b"mine")]
        assert await mine.delete("n") is False
    finally:
        await mine.close()
        await theirs.close()
        await delete_redis_prefix(url, other_prefix)


async def test_two_store_objects_on_one_prefix_share_data_and_atomics(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    first, second = RedisStore(url, prefix=prefix), RedisStore(url, prefix=prefix)
    try:
        assert await first.set_if_absent("leader", b"first") is True
        assert await second.set_if_absent("leader", b"second") is False
        await first.incr("n")
        assert await second.incr("n") == 2
    finally:
        await first.close()
        await second.close()


async def test_the_sweep_drops_expired_keys_from_the_scan_index(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix, sweep_interval=3600)
    raw = aioredis.Redis.from_url(url)
    try:
        await store.put("gone", b"v", ttl=0.1)
        await store.put("kept", b"v")

        async def swept_one() -> bool:
            return await store.sweep() == 1

        await assert_eventually(swept_one, timeout=5)
        assert await raw.zrange(f"{prefix}\x00keys", 0, -1) == [b"kept"]
        assert await raw.zcard(f"{prefix}\x00ttl") == 0
    finally:
        await store.close()
        await raw.aclose()


async def test_a_key_written_again_without_a_ttl_outlives_its_old_expiry_entry(
    redis_prefix: tuple[str, str],
) -> None:
    """A put without a TTL leaves the key's entry in the expiry index (one command less per
    write); the sweep that finds it due keeps the key, in the data and the scan index, and
    drops the entry."""
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix, sweep_interval=3600)
    raw = aioredis.Redis.from_url(url)
    try:
        await store.put("k", b"old", ttl=0.1)
        await store.batch([Put("k", b"new")])
        assert await raw.zcard(f"{prefix}\x00ttl") == 1
        await asyncio.sleep(0.2)  # past the old expiry

        assert await store.sweep() == 0
        assert await raw.zcard(f"{prefix}\x00ttl") == 0
        assert await store.get("k") == b"new"
        assert [key async for key, _ in store.scan("")] == ["k"]
    finally:
        await store.close()
        await raw.aclose()


async def test_keys_expiring_faster_than_a_sweep_takes_are_swept_write_after_write(
    redis_prefix: tuple[str, str],
) -> None:
    """A sweep looks at up to 1,000 due entries; when it found that many, the next write
    sweeps again instead of a sweep interval later (an hour here), so the indexes of a store
    whose keys expire faster than 1,000 per interval do not grow without bound."""
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix, sweep_interval=3600)
    raw = aioredis.Redis.from_url(url)
    try:
        await store.batch([Put(f"k{i}", b"v", ttl=0.05) for i in range(2500)])
        await asyncio.sleep(0.2)  # every one expired
        await store.sweep()  # as its schedule would; the writes after it sweep the rest
        for i in range(3):
            await store.put(f"write{i}", b"v")
        assert await raw.zcard(f"{prefix}\x00ttl") == 0
        assert sorted(await raw.zrange(f"{prefix}\x00keys", 0, -1)) == [
            b"write0",
            b"write1",
            b"write2",
        ]
    finally:
        await store.close()
        await raw.aclose()


def test_a_prefix_given_both_in_the_url_and_as_an_argument_must_agree() -> None:
    with pytest.raises(InvalidStoreURL, match="conflicts"):
        RedisStore("redis://127.0.0.1:6379/0?prefix=a:", prefix="b:")


def test_decode_responses_cannot_be_turned_on() -> None:
    with pytest.raises(ValueError, match="bytes"):
        RedisStore("redis://127.0.0.1:6379/0", decode_responses=True)


async def test_callers_beyond_max_connections_wait_for_a_free_connection(
    redis_prefix: tuple[str, str],
) -> None:
    """The pool opens at most ``max_connections``; a burst of callers queues for them."""
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix, max_connections=2)
    try:
        await asyncio.gather(*(store.put(f"k{i}", b"v") for i in range(50)))
        values = await asyncio.gather(*(store.get(f"k{i}") for i in range(50)))
        assert values == [b"v"] * 50
        pool = store._client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
        assert not pool._in_use_connections, "every connection was given back"
    finally:
        await store.close()


async def test_a_caller_that_waits_longer_than_pool_timeout_gets_store_unavailable(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    store = RedisStore(url, prefix=prefix, max_connections=1, pool_timeout=0.2)
    try:
        blocked = asyncio.create_task(store._client.blpop([f"{prefix}never"], timeout=2))
        await asyncio.sleep(0.1)  # the one connection is now held by the blocked call
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="No connection available"):
            await store.get("k")
        assert time.monotonic() - started < 1.5
        await blocked
        assert await store.get("k") is None, "the connection is free again"
    finally:
        await store.close()


async def test_a_server_that_never_answers_costs_a_call_its_deadline_only() -> None:
    """``socket_timeout`` bounds each store call as a whole (redis-py's per-send and per-read
    timers are off): a server that accepts and then never answers gives StoreUnavailable at
    the deadline, on every call, and the connections it hung are not reused."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
    try:
        for call in (store.get("k"), store.put("k", b"v"), store.get_many(["a", "b"])):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert 0.25 < time.monotonic() - started < 2.0
        pool = store._client.connection_pool
        assert pool.connection_kwargs["socket_timeout"] is None, "no timer per socket call"
        assert not pool._in_use_connections, "every hung connection was given back"
        assert len(accepted) == 3, "each call after a hang opened a new connection"
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_notice_reaches_listeners_of_its_prefix_through_any_store_object(
    redis_prefix: tuple[str, str],
) -> None:
    """What one process publishes, another process on the same prefix hears; a store on
    another prefix does not (its channel is another)."""
    url, prefix = redis_prefix
    mine, same, other = (
        RedisStore(url, prefix=prefix),
        RedisStore(url, prefix=prefix),
        RedisStore(url, prefix=new_redis_prefix()),
    )
    try:
        messages = mine.listen("finals")
        heard = asyncio.ensure_future(anext(messages))
        await assert_eventually(lambda: _reaches(same, heard), timeout=10)
        assert heard.result() == b"e1"
        assert await other.publish("finals", b"e1") == 0
    finally:
        await messages.aclose()  # type: ignore[attr-defined]
        for store in (mine, same, other):
            await store.close()


async def _reaches(store: RedisStore, heard: asyncio.Future[bytes]) -> bool:
    await store.publish("finals", b"e1")
    await asyncio.sleep(0.01)
    return heard.done()
