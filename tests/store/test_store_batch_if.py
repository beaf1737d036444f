"""The ``KVStore.batch_if`` contract (a conditional atomic batch), on memory, leveldb and redis."""

from __future__ import annotations

import asyncio

import pytest

from store import Delete, KVStore, Put


async def test_batch_if_applies_every_operation_when_every_condition_holds(
    store: KVStore,
) -> None:
    await store.put("record", b"v1")
    applied = await store.batch_if(
        {"record": b"v1", "absent": None}, [Put("record", b"v2"), Put("outbox", b"x")]
    )
    assert applied
    assert await store.get_many(["record", "outbox"]) == [b"v2", b"x"]


async def test_batch_if_writes_nothing_when_one_condition_fails(store: KVStore) -> None:
    await store.put("record", b"v1")
    await store.put("other", b"present")
    applied = await store.batch_if(
        {"record": b"v1", "other": None}, [Put("record", b"v2"), Delete("other")]
    )
    assert not applied
    assert await store.get_many(["record", "other"]) == [b"v1", b"present"]


async def test_batch_if_compares_the_exact_bytes(store: KVStore) -> None:
    await store.put("record", b"v1")
    assert not await store.batch_if({"record": b"v1 "}, [Put("record", b"v2")])
    assert not await store.batch_if({"missing": b""}, [Put("missing", b"v2")])
    assert await store.get_many(["record", "missing"]) == [b"v1", None]


async def test_batch_if_with_no_conditions_is_a_plain_batch(store: KVStore) -> None:
    assert await store.batch_if({}, [Put("a", b"1"), Put("b", b"2", ttl=60), Delete("a")])
    assert await store.get_many(["a", "b"]) == [None, b"2"]


async def test_batch_if_treats_an_expired_key_as_absent(store: KVStore) -> None:
    await store.put("lease", b"old", ttl=0.05)
    await asyncio.sleep(0.1)  # the TTL itself is what is under test
    assert await store.batch_if({"lease": None}, [Put("lease", b"new")])
    assert await store.get("lease") == b"new"


async def test_batch_if_validates_everything_before_writing(store: KVStore) -> None:
    with pytest.raises(ValueError):
        await store.batch_if({"": None}, [Put("a", b"1")])
    with pytest.raises(TypeError):
        await store.batch_if({"k": None}, [Put("a", b"1"), "not an op"])  # type: ignore[list-item]
    assert await store.get("a") is None


async def test_exactly_one_of_many_concurrent_batch_ifs_wins(store: KVStore) -> None:
    await store.put("record", b"v0")
    results = await asyncio.gather(
        *(store.batch_if({"record": b"v0"}, [Put("record", f"v{i}".encode())]) for i in range(1, 9))
    )
    assert sum(results) == 1
    winner = results.index(True) + 1
    assert await store.get("record") == f"v{winner}".encode()
