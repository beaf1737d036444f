"""``Incr`` in a batch (counters applied in order, atomically with the rest), on memory, leveldb
and redis."""

from __future__ import annotations

import asyncio

import pytest
from support import assert_eventually

from store import Delete, Incr, KVStore, Put
from store._common import BATCH_COUNTER_LIMIT

SHORT_TTL = 0.2


async def is_absent(store: KVStore, key: str) -> bool:
    return await store.get(key) is None


async def test_an_incr_counts_an_absent_key_as_zero(store: KVStore) -> None:
    await store.batch([Incr("n"), Incr("m", -5)])
    assert await store.get_many(["n", "m"]) == [b"1", b"-5"]


async def test_an_incr_adds_to_a_stored_counter(store: KVStore) -> None:
    await store.put("n", b"41")
    await store.batch([Incr("n")])
    assert await store.get("n") == b"42"


async def test_several_incrs_of_one_key_in_a_batch_add_up(store: KVStore) -> None:
    await store.put("n", b"10")
    await store.batch([Incr("n", 5), Put("other", b"x"), Incr("n", -20), Incr("n")])
    assert await store.get_many(["n", "other"]) == [b"-4", b"x"]


async def test_an_incr_after_a_put_of_its_key_adds_to_the_value_put(store: KVStore) -> None:
    await store.put("n", b"100")
    await store.batch([Put("n", b"7"), Incr("n", 3)])
    assert await store.get("n") == b"10"


async def test_a_put_after_an_incr_of_its_key_overwrites_the_sum(store: KVStore) -> None:
    await store.batch([Incr("n", 3), Put("n", b"not a counter")])
    assert await store.get("n") == b"not a counter"


async def test_an_incr_after_a_delete_of_its_key_starts_from_zero(store: KVStore) -> None:
    await store.put("n", b"not a counter")
    await store.batch([Delete("n"), Incr("n", 2)])
    assert await store.get("n") == b"2"


async def test_a_key_created_by_an_incr_is_scanned(store: KVStore) -> None:
    await store.batch([Incr("job:2"), Put("job:1", b"v")])
    assert [item async for item in store.scan("job:")] == [("job:1", b"v"), ("job:2", b"1")]


async def test_batch_if_get_reads_the_counters_as_the_batch_left_them(store: KVStore) -> None:
    await store.put("n", b"1")
    values = await store.batch_if_get(
        {"n": b"1"}, [Incr("n"), Incr("fresh", 9), Incr("n", 2)], ["n", "fresh", "missing"]
    )
    assert values == [b"4", b"9", None]


async def test_an_incr_in_a_batch_keeps_the_ttl_of_the_key(store: KVStore) -> None:
    await store.put("stored", b"1", ttl=SHORT_TTL)
    await store.batch([Incr("stored"), Put("put", b"5", ttl=SHORT_TTL), Incr("put")])
    assert await store.get_many(["stored", "put"]) == [b"2", b"6"]
    await assert_eventually(lambda: is_absent(store, "stored"), timeout=5)
    await assert_eventually(lambda: is_absent(store, "put"), timeout=5)


async def test_an_incr_after_a_delete_does_not_keep_the_old_ttl(store: KVStore) -> None:
    await store.put("n", b"1", ttl=SHORT_TTL)
    await store.batch([Delete("n"), Incr("n")])
    await store.put("witness", b"w", ttl=SHORT_TTL)
    await assert_eventually(lambda: is_absent(store, "witness"), timeout=5)
    assert await store.get("n") == b"1"


async def test_concurrent_batches_of_incrs_count_exactly(store: KVStore) -> None:
    await asyncio.gather(*(store.batch([Incr("n"), Incr("n", 2)]) for _ in range(50)))
    assert await store.get("n") == b"150"


# -- a batch with a failing Incr writes nothing ---------------------------------------------------


@pytest.mark.parametrize("value", [b"abc", b"1.5", b" 1", b"", b"-0", b"01", b"+1"])
async def test_an_incr_of_a_value_that_is_not_a_counter_fails_the_whole_batch(
    store: KVStore, value: bytes
) -> None:
    await store.put("n", value)
    await store.put("old", b"v")
    with pytest.raises(ValueError):
        await store.batch([Put("new", b"1"), Delete("old"), Incr("other"), Incr("n")])
    assert await store.get_many(["n", "old", "new", "other"]) == [value, b"v", None, None]


async def test_an_incr_after_a_put_of_a_value_that_is_not_a_counter_writes_nothing(
    store: KVStore,
) -> None:
    await store.put("n", b"1")
    with pytest.raises(ValueError):
        await store.batch([Put("n", b"x"), Incr("n")])
    assert await store.get("n") == b"1"


@pytest.mark.parametrize(
    ("start", "amounts"),
    [
        (BATCH_COUNTER_LIMIT, [1]),
        (-BATCH_COUNTER_LIMIT, [-1]),
        (BATCH_COUNTER_LIMIT - 5, [3, 3]),
        (0, [BATCH_COUNTER_LIMIT, 1]),
        (BATCH_COUNTER_LIMIT + 1, [-2]),  # a 64-bit counter, but outside the batch range
        (10**16, [-(10**15)]),
        (2**63 - 1, [-1]),
        (-(2**63), [1]),
    ],
)
async def test_an_incr_leaving_the_batch_counter_range_fails_the_whole_batch(
    store: KVStore, start: int, amounts: list[int]
) -> None:
    await store.put("n", str(start).encode())
    with pytest.raises(ValueError):
        await store.batch([Put("new", b"1"), *(Incr("n", amount) for amount in amounts)])
    assert await store.get_many(["n", "new"]) == [str(start).encode(), None]


async def test_counters_may_reach_the_limits_of_the_batch_counter_range(store: KVStore) -> None:
    await store.put("up", str(BATCH_COUNTER_LIMIT - 2).encode())
    await store.batch([Incr("up", 2), Incr("down", -BATCH_COUNTER_LIMIT), Incr("up", -1)])
    await store.batch([Incr("up")])
    expected = [str(BATCH_COUNTER_LIMIT).encode(), str(-BATCH_COUNTER_LIMIT).encode()]
    assert await store.get_many(["up", "down"]) == expected


async def test_a_failing_incr_fails_batch_if_whose_conditions_hold(store: KVStore) -> None:
    await store.put("n", b"x")
    with pytest.raises(ValueError):
        await store.batch_if({"n": b"x"}, [Put("new", b"1"), Incr("n")])
    with pytest.raises(ValueError):
        await store.batch_if_get({}, [Put("new", b"1"), Incr("n")], ["new"])
    assert await store.get_many(["n", "new"]) == [b"x", None]


async def test_a_failed_condition_writes_nothing_and_raises_nothing(store: KVStore) -> None:
    await store.put("n", b"x")
    assert not await store.batch_if({"n": b"y"}, [Put("new", b"1"), Incr("n"), Incr("m")])
    assert await store.batch_if_get({"n": None}, [Incr("m")], ["m"]) is None
    assert await store.get_many(["n", "new", "m"]) == [b"x", None, None]


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (1.0, TypeError),
        (True, TypeError),
        ("1", TypeError),
        (None, TypeError),
        (BATCH_COUNTER_LIMIT + 1, ValueError),
        (-BATCH_COUNTER_LIMIT - 1, ValueError),
    ],
)
async def test_an_incr_with_a_bad_amount_is_rejected_before_anything_is_written(
    store: KVStore, amount: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.batch([Put("new", b"1"), Incr("n", amount)])  # type: ignore[arg-type]
    assert await store.get_many(["new", "n"]) == [None, None]


@pytest.mark.parametrize("key", ["", "nul\x00", b"bytes"])
async def test_an_incr_with_a_bad_key_is_rejected_before_anything_is_written(
    store: KVStore, key: object
) -> None:
    with pytest.raises((TypeError, ValueError)):
        await store.batch([Put("new", b"1"), Incr(key)])  # type: ignore[arg-type]
    assert await store.get("new") is None
