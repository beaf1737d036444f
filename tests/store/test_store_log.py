"""The log primitive of the ``KVStore`` contract: every test runs on memory, leveldb and redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import assert_eventually

from store import KVStore, LevelDBStore, RedisStore

SHORT_TTL = 0.2


async def test_appended_entries_get_contiguous_offsets_from_one(store: KVStore) -> None:
    assert await store.log_append("log", [b"a", b"b"]) == 2
    assert await store.log_append("log", [b"c"]) == 3
    assert await store.log_read("log") == [(1, b"a"), (2, b"b"), (3, b"c")]


async def test_a_read_resumes_after_any_offset_and_honours_the_limit(store: KVStore) -> None:
    await store.log_append("log", [str(i).encode() for i in range(1, 11)])
    assert await store.log_read("log", after=7) == [(8, b"8"), (9, b"9"), (10, b"10")]
    assert await store.log_read("log", after=2, limit=2) == [(3, b"3"), (4, b"4")]
    assert await store.log_read("log", after=10) == []


async def test_reading_an_absent_log_returns_nothing(store: KVStore) -> None:
    assert await store.log_read("missing") == []


async def test_logs_are_separate_from_values_and_invisible_to_scan(store: KVStore) -> None:
    await store.put("same", b"value")
    await store.log_append("same", [b"entry"])
    assert await store.get("same") == b"value"
    assert [key async for key, _ in store.scan("")] == ["same"]
    assert await store.log_read("same") == [(1, b"entry")]


async def test_max_len_keeps_the_newest_entries_and_offsets_go_on(store: KVStore) -> None:
    await store.log_append("log", [b"1", b"2", b"3"], max_len=2)
    assert await store.log_read("log") == [(2, b"2"), (3, b"3")]
    assert await store.log_append("log", [b"4"], max_len=2) == 4
    assert await store.log_read("log", after=1) == [(3, b"3"), (4, b"4")]


async def test_concurrent_appends_never_share_an_offset(store: KVStore) -> None:
    tasks = [store.log_append("log", [f"{i}a".encode(), f"{i}b".encode()]) for i in range(20)]
    await asyncio.gather(*tasks)
    entries = await store.log_read("log", limit=100)
    assert [offset for offset, _ in entries] == list(range(1, 41))
    for offset, value in entries:  # each append's two entries are adjacent
        if value.endswith(b"a"):
            assert (offset + 1, value[:-1] + b"b") in entries


async def test_a_log_with_a_ttl_expires_and_then_starts_again_at_one(store: KVStore) -> None:
    await store.log_append("log", [b"old"], ttl=SHORT_TTL)

    async def expired() -> bool:
        return await store.log_read("log") == []

    await assert_eventually(expired)
    assert await store.log_append("log", [b"new"]) == 1


async def test_log_expire_and_log_delete_report_whether_the_log_existed(store: KVStore) -> None:
    assert not await store.log_expire("log", 10)
    assert not await store.log_delete("log")
    await store.log_append("log", [b"x"])
    assert await store.log_expire("log", 10)
    assert await store.log_delete("log")
    assert await store.log_read("log") == []
    assert await store.log_append("log", [b"y"]) == 1


async def test_log_expire_shortens_a_log_s_life(store: KVStore) -> None:
    await store.log_append("log", [b"x"])
    await store.log_expire("log", SHORT_TTL)

    async def expired() -> bool:
        return await store.log_read("log") == []

    await assert_eventually(expired)


async def test_log_expire_without_a_ttl_takes_the_expiry_back(store: KVStore) -> None:
    assert not await store.log_expire("log", None)  # absent
    await store.log_append("log", [b"x"], ttl=SHORT_TTL)
    await store.log_append("kept", [b"x"])
    assert await store.log_expire("log", None)
    assert await store.log_expire("kept", None)  # had none: still there, still none
    await asyncio.sleep(SHORT_TTL * 2)
    await store.put("other", b"v")  # the memory store sweeps before a write
    if isinstance(store, LevelDBStore | RedisStore):
        await store.sweep()
    assert await store.log_read("log") == [(1, b"x")]
    assert await store.log_read("kept") == [(1, b"x")]


@pytest.mark.parametrize(
    ("entries", "options"),
    [([], {}), ([b"x"], {"max_len": 0}), (["text"], {}), ([b"x"], {"ttl": -1})],
)
async def test_a_bad_append_is_refused_and_writes_nothing(
    store: KVStore, entries: list[bytes], options: dict[str, int]
) -> None:
    with pytest.raises((TypeError, ValueError)):
        await store.log_append("log", entries, **options)  # type: ignore[arg-type]
    assert await store.log_read("log") == []


async def test_a_negative_offset_is_refused(store: KVStore) -> None:
    with pytest.raises(ValueError):
        await store.log_read("log", after=-1)


async def test_a_leveldb_log_survives_a_reopen_and_an_expired_one_is_swept(tmp_path: Path) -> None:
    async with LevelDBStore(tmp_path / "db") as first:
        await first.log_append("kept", [b"a", b"b"], max_len=5)
        await first.log_append("gone", [b"x"], ttl=0.05)
    async with LevelDBStore(tmp_path / "db") as second:
        assert await second.log_read("kept") == [(1, b"a"), (2, b"b")]
        assert await second.log_append("kept", [b"c"]) == 3

        async def swept() -> bool:
            await second.sweep()
            return not any(True for _ in second._db.iterator(prefix=b"lgone"))

        await assert_eventually(swept)
