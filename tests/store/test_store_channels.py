"""The ``KVStore.publish`` / ``listen`` contract (notices to whoever listens now), on memory,
leveldb and redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from store import Incr, KVStore, MemoryStore, Publish, Put, StoreClosed

WAIT = 10.0
READY = b"ready"


async def _listening(store: KVStore, channel: str) -> AsyncIterator[bytes]:
    """A listener on ``channel``, listening when this returns: "ready" is published until it
    comes through (``_take`` skips the extra ones)."""
    messages = store.listen(channel)
    first = asyncio.ensure_future(anext(messages))
    async with asyncio.timeout(WAIT):
        while not first.done():
            await store.publish(channel, READY)
            await asyncio.wait([first], timeout=0.01)
    assert first.result() == READY
    return messages


async def _take(messages: AsyncIterator[bytes], count: int) -> list[bytes]:
    """The next ``count`` messages that are not "ready"."""
    taken: list[bytes] = []
    async with asyncio.timeout(WAIT):
        while len(taken) < count:
            if (message := await anext(messages)) != READY:
                taken.append(message)
    return taken


async def test_a_listener_gets_what_is_published_on_its_channel_in_order(store: KVStore) -> None:
    messages = await _listening(store, "finals")
    assert await store.publish("finals", b"e1") == 1
    assert await store.publish("other", b"not for it") == 0
    await store.publish("finals", b"e2")
    assert await _take(messages, 2) == [b"e1", b"e2"]
    await messages.aclose()  # type: ignore[attr-defined]


async def test_every_listener_of_a_channel_gets_each_message(store: KVStore) -> None:
    first, second = await _listening(store, "c"), await _listening(store, "c")
    assert await store.publish("c", b"both") == 2
    assert await _take(first, 1) == [b"both"]
    assert await _take(second, 1) == [b"both"]
    for messages in (first, second):
        await messages.aclose()  # type: ignore[attr-defined]


async def test_nothing_is_kept_for_a_listener_that_comes_later(store: KVStore) -> None:
    assert await store.publish("c", b"too early") == 0
    messages = await _listening(store, "c")
    await store.publish("c", b"on time")
    assert await _take(messages, 1) == [b"on time"]
    await messages.aclose()  # type: ignore[attr-defined]


async def test_a_publish_in_a_batch_is_sent_once_the_batch_is_written(store: KVStore) -> None:
    messages = await _listening(store, "c")
    written = asyncio.Event()

    async def listener() -> None:  # each notice is heard after its batch's writes
        for i in range(20):
            (message,) = await _take(messages, 1)
            assert message == str(i).encode()
            assert await store.get(f"k{i}") == b"v"
        written.set()

    hearing = asyncio.create_task(listener())
    for i in range(20):
        await store.batch([Publish("c", str(i).encode()), Put(f"k{i}", b"v")])
    async with asyncio.timeout(WAIT):
        await hearing
    assert written.is_set()
    await messages.aclose()  # type: ignore[attr-defined]


async def test_a_batch_that_is_not_written_sends_nothing(store: KVStore) -> None:
    messages = await _listening(store, "c")
    await store.put("n", b"not a counter")
    assert not await store.batch_if({"k": b"other"}, [Put("k", b"v"), Publish("c", b"no")])
    with pytest.raises(ValueError):
        await store.batch([Publish("c", b"no"), Incr("n", 1)])
    with pytest.raises(ValueError):
        await store.batch([Put("k", b"v"), Publish("", b"no")])
    with pytest.raises(TypeError):
        await store.batch([Put("k", b"v"), Publish("c", "text")])  # type: ignore[arg-type]
    await store.publish("c", b"after")
    assert await _take(messages, 1) == [b"after"]  # nothing came before it
    assert await store.get("k") is None
    await messages.aclose()  # type: ignore[attr-defined]


async def test_closing_the_store_ends_its_listeners(store: KVStore) -> None:
    messages = await _listening(store, "c")
    rest = asyncio.ensure_future(_rest(messages))
    await asyncio.sleep(0.05)
    await store.close()
    async with asyncio.timeout(WAIT):
        assert await rest == []
    with pytest.raises(StoreClosed):
        await store.publish("c", b"late")
    with pytest.raises(StoreClosed):
        await anext(store.listen("c"))


async def _rest(messages: AsyncIterator[bytes]) -> list[bytes]:
    return [message async for message in messages]


async def test_a_channel_name_is_checked_like_a_key(store: KVStore) -> None:
    with pytest.raises(ValueError):
        await store.publish("", b"x")
    with pytest.raises(ValueError):
        await anext(store.listen("bad\x00name"))


async def test_an_in_process_store_takes_a_notice_published_from_another_thread() -> None:
    store = MemoryStore()
    messages = await _listening(store, "c")
    reached = await asyncio.to_thread(lambda: asyncio.run(store.publish("c", b"from a thread")))
    assert reached == 1
    assert await _take(messages, 1) == [b"from a thread"]
    await store.close()
