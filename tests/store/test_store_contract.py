"""The ``KVStore`` contract: every test runs against memory, leveldb and redis."""

from __future__ import annotations

import asyncio
import random

import pytest
from support import assert_eventually

from store import Delete, KVStore, LevelDBStore, Put, RedisStore, StoreClosed

SHORT_TTL = 0.2


async def scan_all(
    store: KVStore, prefix: str = "", page_size: int = 500
) -> list[tuple[str, bytes]]:
    return [item async for item in store.scan(prefix, page_size=page_size)]


async def is_absent(store: KVStore, key: str) -> bool:
    return await store.get(key) is None


# -- get / put / delete ---------------------------------------------------------------------------


def test_the_store_satisfies_the_kvstore_protocol(store: KVStore) -> None:
    assert isinstance(store, KVStore)


async def test_a_value_that_was_put_can_be_read_back(store: KVStore) -> None:
    await store.put("greeting", b"hello")
    assert await store.get("greeting") == b"hello"


async def test_get_of_a_missing_key_returns_none(store: KVStore) -> None:
    assert await store.get("missing") is None


async def test_put_overwrites_the_previous_value(store: KVStore) -> None:
    await store.put("k", b"one")
    await store.put("k", b"two")
    assert await store.get("k") == b"two"


async def test_values_are_binary_safe_including_the_empty_value(store: KVStore) -> None:
    await store.put("binary", bytes(range(256)))
    await store.put("empty", b"")
    assert await store.get("binary") == bytes(range(256))
    assert await store.get("empty") == b""
    assert await scan_all(store) == [("binary", bytes(range(256))), ("empty", b"")]


async def test_delete_removes_a_key_and_reports_whether_it_existed(store: KVStore) -> None:
    await store.put("k", b"v")
    assert await store.delete("k") is True
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_get_many_returns_values_in_the_order_asked_with_none_for_missing(
    store: KVStore,
) -> None:
    await store.put("a", b"1")
    await store.put("c", b"3")
    assert await store.get_many(["c", "missing", "a", "c"]) == [b"3", None, b"1", b"3"]


async def test_get_many_of_no_keys_returns_an_empty_list(store: KVStore) -> None:
    assert await store.get_many([]) == []


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("", b"v", ValueError),
        ("nul\x00key", b"v", ValueError),
        (b"bytes-key", b"v", TypeError),
        ("k", "not bytes", TypeError),
        ("k", bytearray(b"v"), TypeError),
    ],
    ids=["empty-key", "nul-in-key", "bytes-key", "str-value", "bytearray-value"],
)
async def test_put_rejects_invalid_keys_and_values(
    store: KVStore, key: object, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.put(key, value)  # type: ignore[arg-type]
    assert await scan_all(store) == []


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf")])
async def test_put_rejects_a_ttl_that_is_not_a_positive_finite_number(
    store: KVStore, ttl: float
) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.put("k", b"v", ttl=ttl)
    assert await store.get("k") is None


async def test_unicode_keys_round_trip(store: KVStore) -> None:
    await store.put("naïve/ключ/鍵/🙂", b"v")
    assert await store.get("naïve/ключ/鍵/🙂") == b"v"
    assert await scan_all(store, "naïve/") == [("naïve/ключ/鍵/🙂", b"v")]


# -- TTL ------------------------------------------------------------------------------------------


async def test_a_key_put_with_a_ttl_expires(store: KVStore) -> None:
    await store.put("session", b"v", ttl=SHORT_TTL)
    assert await store.get("session") == b"v"
    await assert_eventually(lambda: is_absent(store, "session"), timeout=5)
    assert await store.get_many(["session"]) == [None]


async def test_put_without_a_ttl_removes_an_earlier_ttl(store: KVStore) -> None:
    await store.put("kept", b"v", ttl=SHORT_TTL)
    await store.put("kept", b"v2")
    await store.put("witness", b"w", ttl=SHORT_TTL)
    await assert_eventually(lambda: is_absent(store, "witness"), timeout=5)
    assert await store.get("kept") == b"v2"


async def test_expire_makes_an_existing_key_expire(store: KVStore) -> None:
    await store.put("k", b"v")
    assert await store.expire("k", SHORT_TTL) is True
    assert await store.get("k") == b"v"
    await assert_eventually(lambda: is_absent(store, "k"), timeout=5)


async def test_expire_of_a_missing_key_returns_false(store: KVStore) -> None:
    assert await store.expire("missing", 10) is False
    assert await store.get("missing") is None


async def test_expire_prefix_gives_every_key_under_the_prefix_the_expiry(store: KVStore) -> None:
    for key in ("run/1", "run/2/a", "run/2/b", "runner", "other/run/1"):
        await store.put(key, b"v")
    await store.put("run/3", b"v", ttl=SHORT_TTL)
    await assert_eventually(lambda: is_absent(store, "run/3"), timeout=5)  # not counted
    assert await store.expire_prefix("run/", SHORT_TTL) == 3
    assert await store.get("run/2/b") == b"v"
    await assert_eventually(lambda: is_absent(store, "run/2/b"), timeout=5)
    assert await scan_all(store) == [("other/run/1", b"v"), ("runner", b"v")]


async def test_expire_prefix_without_a_ttl_takes_the_expiry_back(store: KVStore) -> None:
    """``ttl=None``: the keys under the prefix never expire, whatever expiry they had (their
    entries in a backend's expiry index are dropped, so no sweep removes them later)."""
    await store.batch([Put("run/1", b"v", ttl=SHORT_TTL), Put("run/2", b"v"), Put("runner", b"v")])
    await store.put("run/3", b"v", ttl=SHORT_TTL)
    await store.expire_prefix("run/", SHORT_TTL)
    await store.put("runner", b"w", ttl=SHORT_TTL)
    assert await store.expire_prefix("run/", None) == 3
    await asyncio.sleep(SHORT_TTL * 2)
    await store.put("other", b"v")  # the memory store sweeps before a write
    if isinstance(store, LevelDBStore | RedisStore):
        await store.sweep()
    assert await scan_all(store, "run/") == [("run/1", b"v"), ("run/2", b"v"), ("run/3", b"v")]
    await assert_eventually(lambda: is_absent(store, "runner"), timeout=5)  # not under it
    assert await store.expire_prefix("none/", None) == 0


async def test_expire_prefix_of_a_long_prefix_pages_through_it_and_refuses_an_empty_one(
    store: KVStore,
) -> None:
    await store.batch([Put(f"big/{i:04d}", b"v") for i in range(1200)])
    assert await store.expire_prefix("big/", 3600) == 1200
    assert await store.expire_prefix("none/", 3600) == 0
    assert len(await scan_all(store, "big/")) == 1200
    assert await store.expire_prefix("big/", None) == 1200
    with pytest.raises(ValueError, match="empty"):
        await store.expire_prefix("", 3600)


async def test_an_expired_key_behaves_as_absent_everywhere(store: KVStore) -> None:
    await store.put("gone", b"v", ttl=SHORT_TTL)
    await store.put("stays", b"v")
    await assert_eventually(lambda: is_absent(store, "gone"), timeout=5)
    assert await scan_all(store) == [("stays", b"v")]
    assert await store.expire("gone", 10) is False
    assert await store.delete("gone") is False
    assert await store.compare_and_set("gone", b"v", b"new") is False
    assert await store.set_if_absent("gone", b"again") is True
    assert await store.get("gone") == b"again"


# -- scan -----------------------------------------------------------------------------------------


async def test_scan_yields_keys_in_ascending_order(store: KVStore) -> None:
    keys = ["b", "a", "a/2", "a/10", "A", "é", "z", "ä", "~", "鍵", "🙂"]
    for key in random.sample(keys, len(keys)):
        await store.put(key, key.encode())
    assert [key for key, _ in await scan_all(store)] == sorted(keys)


async def test_scan_yields_only_keys_under_the_prefix(store: KVStore) -> None:
    for key in ["job:1", "job:2", "job", "jobs:1", "jo", "other:1"]:
        await store.put(key, b"v")
    assert [key for key, _ in await scan_all(store, "job:")] == ["job:1", "job:2"]
    assert [key for key, _ in await scan_all(store, "nothing:")] == []


async def test_scan_with_an_empty_prefix_yields_every_key_with_its_value(store: KVStore) -> None:
    await store.put("x", b"1")
    await store.put("y", b"2")
    assert await scan_all(store) == [("x", b"1"), ("y", b"2")]


async def test_scan_pages_through_more_keys_than_the_page_size(store: KVStore) -> None:
    expected = [(f"item:{i:03d}", str(i).encode()) for i in range(23)]
    await store.batch([Put(key, value) for key, value in reversed(expected)])
    await store.put("itemz", b"outside")
    for page_size in (1, 4, 23, 500):
        assert await scan_all(store, "item:", page_size=page_size) == expected


async def test_scan_skips_keys_deleted_while_it_pages(store: KVStore) -> None:
    await store.batch([Put(f"k{i}", b"v") for i in range(6)])
    seen = []
    async for key, _ in store.scan("k", page_size=2):
        seen.append(key)
        if key == "k1":
            await store.delete("k4")
    assert seen == ["k0", "k1", "k2", "k3", "k5"]


async def test_scan_rejects_a_page_size_below_one(store: KVStore) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await scan_all(store, page_size=0)


# -- batch ----------------------------------------------------------------------------------------


async def test_batch_applies_puts_and_deletes_together(store: KVStore) -> None:
    await store.put("old", b"v")
    await store.batch([Put("a", b"1"), Put("b", b"2", ttl=60), Delete("old"), Delete("never")])
    assert await scan_all(store) == [("a", b"1"), ("b", b"2")]


async def test_batch_applies_operations_in_order(store: KVStore) -> None:
    await store.batch([Put("k", b"1"), Put("k", b"2"), Put("gone", b"x"), Delete("gone")])
    assert await store.get_many(["k", "gone"]) == [b"2", None]


async def test_an_empty_batch_changes_nothing(store: KVStore) -> None:
    await store.put("k", b"v")
    await store.batch([])
    assert await scan_all(store) == [("k", b"v")]


@pytest.mark.parametrize(
    ("bad_op", "error"),
    [
        (Put("b", "not bytes"), TypeError),  # type: ignore[arg-type]
        (Put("", b"v"), ValueError),
        (Put("nul\x00", b"v"), ValueError),
        (Put("b", b"v", ttl=-1), ValueError),
        (Delete(""), ValueError),
        (("b", b"v"), TypeError),
    ],
    ids=["str-value", "empty-key", "nul-in-key", "negative-ttl", "empty-delete-key", "tuple-op"],
)
async def test_a_batch_with_an_invalid_operation_in_the_middle_writes_nothing(
    store: KVStore, bad_op: object, error: type[Exception]
) -> None:
    await store.put("existing", b"before")
    ops = [Put("a", b"1"), Delete("existing"), bad_op, Put("c", b"3")]
    with pytest.raises(error):
        await store.batch(ops)  # type: ignore[arg-type]
    assert await scan_all(store) == [("existing", b"before")]


# -- atomics --------------------------------------------------------------------------------------


async def test_a_hundred_concurrent_increments_count_exactly_a_hundred(store: KVStore) -> None:
    results = await asyncio.gather(*(store.incr("counter") for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    assert await store.get("counter") == b"100"


async def test_incr_counts_a_missing_key_as_zero_and_stores_ascii_decimal(store: KVStore) -> None:
    assert await store.incr("n", 5) == 5
    assert await store.incr("n", -7) == -2
    assert await store.get("n") == b"-2"
    await store.put("m", b"41")
    assert await store.incr("m") == 42


@pytest.mark.parametrize("value", [b"abc", b"1.5", b" 1", b"", b"99999999999999999999"])
async def test_incr_of_a_value_that_is_not_a_64_bit_integer_raises_value_error(
    store: KVStore, value: bytes
) -> None:
    await store.put("n", value)
    with pytest.raises(ValueError):
        await store.incr("n")
    assert await store.get("n") == value


async def test_incr_that_would_overflow_64_bits_raises_value_error(store: KVStore) -> None:
    await store.put("n", str(2**63 - 1).encode())
    with pytest.raises(ValueError):
        await store.incr("n")
    assert await store.get("n") == str(2**63 - 1).encode()


async def test_incr_keeps_the_ttl_of_the_key(store: KVStore) -> None:
    await store.put("n", b"1", ttl=SHORT_TTL)
    assert await store.incr("n") == 2
    await assert_eventually(lambda: is_absent(store, "n"), timeout=5)


async def test_exactly_one_of_fifty_concurrent_set_if_absent_calls_wins(store: KVStore) -> None:
    results = await asyncio.gather(
        *(store.set_if_absent("leader", f"w{i}".encode()) for i in range(50))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get("leader") == f"w{winner}".encode()


async def test_set_if_absent_can_set_a_ttl(store: KVStore) -> None:
    assert await store.set_if_absent("lock", b"me", ttl=SHORT_TTL) is True
    assert await store.set_if_absent("lock", b"you") is False
    await assert_eventually(lambda: is_absent(store, "lock"), timeout=5)
    assert await store.set_if_absent("lock", b"you") is True


async def test_a_stale_compare_and_set_fails_and_a_fresh_one_succeeds(store: KVStore) -> None:
    await store.put("status", b"v1")
    assert await store.compare_and_set("status", b"v1", b"v2") is True
    assert await store.compare_and_set("status", b"v1", b"v3") is False
    assert await store.get("status") == b"v2"
    assert await store.compare_and_set("status", b"v2", b"v3") is True
    assert await store.get("status") == b"v3"


async def test_compare_and_set_with_expected_none_requires_the_key_to_be_absent(
    store: KVStore,
) -> None:
    assert await store.compare_and_set("k", None, b"first") is True
    assert await store.compare_and_set("k", None, b"second") is False
    assert await store.get("k") == b"first"


async def test_compare_and_set_on_a_missing_key_with_an_expected_value_fails(
    store: KVStore,
) -> None:
    assert await store.compare_and_set("k", b"anything", b"new") is False
    assert await store.compare_and_set("k", b"", b"new") is False
    assert await store.get("k") is None


async def test_compare_and_set_can_set_a_ttl(store: KVStore) -> None:
    await store.put("lease", b"a")
    assert await store.compare_and_set("lease", b"a", b"b", ttl=SHORT_TTL) is True
    await assert_eventually(lambda: is_absent(store, "lease"), timeout=5)


async def test_concurrent_compare_and_set_from_the_same_value_has_one_winner(
    store: KVStore,
) -> None:
    await store.put("token", b"0")
    results = await asyncio.gather(
        *(store.compare_and_set("token", b"0", str(i).encode()) for i in range(1, 31))
    )
    assert results.count(True) == 1


# -- lifecycle ------------------------------------------------------------------------------------


async def test_use_after_close_raises_store_closed(store: KVStore) -> None:
    await store.put("k", b"v")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosed):
        await store.get("k")
    with pytest.raises(StoreClosed):
        await store.put("k", b"v")
    with pytest.raises(StoreClosed):
        await store.incr("n")
    with pytest.raises(StoreClosed):
        await store.batch([Put("k", b"v")])
    with pytest.raises(StoreClosed):
        await scan_all(store)


async def test_the_store_closes_when_used_as_an_async_context_manager(store: KVStore) -> None:
    async with store as entered:  # type: ignore[attr-defined]
        assert entered is store
        await store.put("k", b"v")
    with pytest.raises(StoreClosed):
        await store.get("k")
