"""Trimming a log by the age of its entries (``log_append(..., max_age=S)``), part of the
``KVStore`` log contract: every test runs on memory, leveldb and redis. The subject is time, so
these tests wait real (short) times; their margins are wide enough for a loaded machine."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from store import KVStore, LevelDBStore

AGE = 0.25  # the max_age of the trimming appends
OLD = 0.35  # how long the "old" entries wait before such an append


async def test_max_age_drops_the_entries_appended_longer_ago_and_offsets_go_on(
    store: KVStore,
) -> None:
    await store.log_append("log", [b"1", b"2"])
    await asyncio.sleep(OLD)
    await store.log_append("log", [b"3", b"4", b"5"])  # young, appended without a trim
    assert await store.log_append("log", [b"6"], max_age=AGE) == 6
    assert await store.log_read("log") == [(3, b"3"), (4, b"4"), (5, b"5"), (6, b"6")]
    await store.log_append("log", [b"7"], max_len=3, max_age=AGE)  # both bounds hold
    assert await store.log_read("log") == [(5, b"5"), (6, b"6"), (7, b"7")]
    assert await store.log_read("log", after=6) == [(7, b"7")]
    # the entries just appended are never trimmed, however short the age
    assert await store.log_append("log", [b"8", b"9"], max_age=0.001) == 9
    entries = await store.log_read("log")
    assert entries[-2:] == [(8, b"8"), (9, b"9")]
    assert [o for o, _ in entries] == list(range(entries[0][0], 10))


async def test_max_age_keeps_everything_younger(store: KVStore) -> None:
    await store.log_append("log", [b"a"])
    await store.log_append("log", [b"b", b"c"], max_age=60)
    assert await store.log_read("log") == [(1, b"a"), (2, b"b"), (3, b"c")]


async def test_a_log_trimmed_by_age_over_many_appends_keeps_a_contiguous_tail(
    store: KVStore,
) -> None:
    for n in range(1, 31):
        await store.log_append("log", [str(n).encode()], max_age=AGE, max_len=20)
        if n == 10:
            await asyncio.sleep(OLD)
    entries = await store.log_read("log", limit=100)
    offsets = [offset for offset, _ in entries]
    assert offsets == list(range(offsets[0], 31)) and offsets[0] == 11


@pytest.mark.parametrize("max_age", [0, -1, math.nan, math.inf])
async def test_a_bad_max_age_is_refused_and_writes_nothing(store: KVStore, max_age: float) -> None:
    with pytest.raises(ValueError):
        await store.log_append("log", [b"x"], max_age=max_age)
    assert await store.log_read("log") == []


async def test_leveldb_ages_survive_a_reopen_and_its_time_marks_do_not_pile_up(
    tmp_path: Path,
) -> None:
    async with LevelDBStore(tmp_path / "db") as first:
        await first.log_append("log", [b"a", b"b"])
    await asyncio.sleep(OLD)
    async with LevelDBStore(tmp_path / "db") as second:
        assert await second.log_append("log", [b"c"], max_age=AGE) == 3
        assert await second.log_read("log") == [(3, b"c")]
        for n in range(200):
            await second.log_append("log", [str(n).encode()], max_len=5, max_age=60)
        assert len(await second.log_read("log")) == 5
        marks = list(second._db.iterator(prefix=b"tlog\x00", include_value=False))
        assert 1 <= len(marks) <= 6  # one per append still dating a kept entry
        await second.log_delete("log")
        assert not list(second._db.iterator(prefix=b"tlog\x00", include_value=False))
