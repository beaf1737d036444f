"""The ``KVStore.batch_if`` contract (a conditional atomic batch), on memory, leveldb and redis."""

from __future__ import annotations

import asyncio

import pytest

from store import Delete, Incr, KVStore, Put


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


# -- batch_if_get: the same, reading keys as the batch left them ----------------------------------


async def test_batch_if_get_returns_the_keys_as_its_own_batch_left_them(store: KVStore) -> None:
    await store.put("edge/a", b"1")
    await store.put("gone", b"x")
    values = await store.batch_if_get(
        {"edge/b": None},
        [Put("edge/b", b"0"), Delete("gone")],
        ["edge/a", "edge/b", "edge/c", "gone"],
    )
    assert values == [b"1", b"0", None, None]


async def test_batch_if_get_writes_and_reads_nothing_when_a_condition_fails(
    store: KVStore,
) -> None:
    await store.put("record", b"v1")
    assert await store.batch_if_get({"record": b"v0"}, [Put("out", b"x")], ["record"]) is None
    assert await store.get("out") is None


async def test_batch_if_get_with_nothing_to_read_returns_an_empty_list(store: KVStore) -> None:
    assert await store.batch_if_get({}, [Put("a", b"1")], []) == []
    assert await store.batch_if_get({}, [], ["a", "a"]) == [b"1", b"1"]


async def test_batch_if_get_validates_the_keys_to_read_before_writing(store: KVStore) -> None:
    with pytest.raises(ValueError):
        await store.batch_if_get({}, [Put("a", b"1")], ["ok", ""])
    assert await store.get("a") is None


async def test_concurrent_batch_if_gets_each_see_the_writes_before_them(store: KVStore) -> None:
    """Each of n writers resolves one edge and reads all n: exactly one sees all of them
    resolved (the last), however the writes interleave -- what decides a join once."""
    edges = [f"edge/{i}" for i in range(8)]
    seen = await asyncio.gather(
        *(store.batch_if_get({}, [Put(edge, b"1")], edges) for edge in edges)
    )
    complete = [values for values in seen if values is not None and None not in values]
    assert len(complete) == 1
    counts = sorted(sum(v is not None for v in values or []) for values in seen)
    assert counts == list(range(1, 9))


# -- get_and_batch_if: read keys, then the batch if its conditions hold, in one step ---------------


async def test_get_and_batch_if_reads_the_keys_as_they_were_before_its_batch(
    store: KVStore,
) -> None:
    await store.put("step", b"old")
    await store.put("record", b"r")
    applied, values = await store.get_and_batch_if(
        ["record", "step", "lease", "record"],
        {"lease": None, "record": b"r"},
        [Put("lease", b"mine"), Delete("step")],
    )
    assert applied
    assert values == [b"r", b"old", None, b"r"]
    assert await store.get_many(["lease", "step"]) == [b"mine", None]


async def test_get_and_batch_if_reads_and_writes_nothing_when_a_condition_fails(
    store: KVStore,
) -> None:
    await store.put("lease", b"theirs")
    applied, values = await store.get_and_batch_if(
        ["lease", "record"], {"lease": None}, [Put("lease", b"mine"), Put("other", b"x")]
    )
    assert not applied
    assert values == [b"theirs", None]  # what stopped it, read in the same step
    assert await store.get_many(["lease", "other"]) == [b"theirs", None]


async def test_get_and_batch_if_reads_an_expired_key_as_absent(store: KVStore) -> None:
    await store.put("lease", b"old", ttl=0.05)
    await asyncio.sleep(0.1)  # the TTL itself is what is under test
    applied, values = await store.get_and_batch_if(["lease"], {"lease": None}, [])
    assert applied and values == [None]


async def test_get_and_batch_if_adds_counters_and_refuses_a_bad_one_whole(
    store: KVStore,
) -> None:
    applied, values = await store.get_and_batch_if(["n"], {}, [Incr("n", 2), Put("seen", b"1")])
    assert applied and values == [None]
    await store.put("text", b"not a number")
    with pytest.raises(ValueError):
        await store.get_and_batch_if(["n"], {}, [Put("later", b"1"), Incr("text")])
    assert await store.get_many(["n", "later"]) == [b"2", None]


async def test_get_and_batch_if_validates_everything_before_it_reads_or_writes(
    store: KVStore,
) -> None:
    with pytest.raises(ValueError):
        await store.get_and_batch_if(["ok", ""], {}, [Put("a", b"1")])
    with pytest.raises(ValueError):
        await store.get_and_batch_if(["ok"], {"": None}, [Put("a", b"1")])
    assert await store.get("a") is None


async def test_exactly_one_of_many_concurrent_get_and_batch_ifs_wins(store: KVStore) -> None:
    """Eight workers race to lease one step: one writes, and the others read its lease."""
    results = await asyncio.gather(
        *(
            store.get_and_batch_if(["step"], {"step": None}, [Put("step", f"w{i}".encode())])
            for i in range(8)
        )
    )
    winners = [i for i, (applied, _) in enumerate(results) if applied]
    assert len(winners) == 1
    assert results[winners[0]][1] == [None]
    stored = await store.get("step")
    assert stored == f"w{winners[0]}".encode()
    assert all(values == [stored] for applied, values in results if not applied)
