"""LevelDB-specific behaviour: persistence, the single-process lock, the expiry sweep."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from support import assert_eventually

from store import LevelDBStore, Put, StoreClosed, StoreLocked, open_store
from store.leveldb import DEFAULT_WRITE_BUFFER

REPO_ROOT = Path(__file__).resolve().parents[2]

OPEN_IN_CHILD = """
import sys
from store import StoreLocked, open_store
try:
    open_store("leveldb://" + sys.argv[1])
except StoreLocked as exc:
    print(type(exc).__name__ + ": " + str(exc))
    sys.exit(3)
print("opened")
"""


async def is_absent(store: LevelDBStore, key: str) -> bool:
    return await store.get(key) is None


async def test_values_survive_close_and_reopen(tmp_path: Path) -> None:
    first = LevelDBStore(tmp_path / "db")
    await first.batch([Put("a", b"1"), Put("b", b"2", ttl=3600)])
    await first.incr("n", 7)
    await first.close()
    second = LevelDBStore(tmp_path / "db")
    try:
        assert [item async for item in second.scan("")] == [
            ("a", b"1"),
            ("b", b"2"),
            ("n", b"7"),
        ]
    finally:
        await second.close()


async def test_a_ttl_is_still_honoured_after_reopening(tmp_path: Path) -> None:
    ttl = 1.0
    first = LevelDBStore(tmp_path / "db")
    written = time.monotonic()
    await first.batch([Put("short", b"v", ttl=ttl), Put("long", b"w", ttl=3600)])
    await first.close()
    second = LevelDBStore(tmp_path / "db")
    try:
        short = await second.get("short")
        if time.monotonic() - written < ttl:  # read back before it was due: it was saved
            assert short == b"v"
        await assert_eventually(lambda: is_absent(second, "short"), timeout=ttl + 5)
        assert time.monotonic() - written >= ttl - 0.01  # gone because it expired, not earlier
        assert await second.get("long") == b"w"  # the reopened store reads what was written
    finally:
        await second.close()


async def test_a_second_process_opening_the_same_directory_gets_store_locked(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "db")
    holder = LevelDBStore(path)
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_IN_CHILD,
            path,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    finally:
        await holder.close()
    output = stdout.decode()
    assert child.returncode == 3, (output, stderr.decode())
    assert output.startswith("StoreLocked: ")
    assert path in output
    assert "single-process" in output
    assert "redis://" in output


async def test_a_second_store_on_the_same_directory_in_one_process_gets_store_locked(
    tmp_path: Path,
) -> None:
    holder = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StoreLocked, match="single-process") as caught:
            LevelDBStore(tmp_path / "db")
        assert caught.value.path == str(tmp_path / "db")
        assert isinstance(caught.value.__cause__, OSError)
    finally:
        await holder.close()


async def test_the_directory_can_be_reopened_once_the_first_store_is_closed(
    tmp_path: Path,
) -> None:
    await LevelDBStore(tmp_path / "db").close()
    reopened = LevelDBStore(tmp_path / "db")
    await reopened.close()
    with pytest.raises(StoreClosed):
        await reopened.get("k")


async def test_the_sweep_deletes_expired_records_from_disk(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db", sweep_interval=3600)
    try:
        await store.put("gone", b"v", ttl=0.1)
        await store.put("rewritten", b"v", ttl=0.1)
        await store.put("rewritten", b"kept")  # leaves a stale expiry-index entry
        await store.put("forever", b"v")

        async def swept_one() -> bool:
            return await store.sweep() == 1

        await assert_eventually(swept_one, timeout=5)
        raw_keys = list(store._db.iterator(include_value=False))  # white-box: what is on disk
        assert raw_keys == [b"dforever", b"drewritten"]
        assert await store.get("rewritten") == b"kept"
    finally:
        await store.close()


async def test_keys_expiring_faster_than_a_sweep_takes_are_swept_write_after_write(
    tmp_path: Path,
) -> None:
    """A sweep writes up to 10,000 deletions; when it reached that many, the next write sweeps
    again instead of a sweep interval later (an hour here)."""
    store = LevelDBStore(tmp_path / "db", sweep_interval=3600)
    try:
        await store.batch([Put(f"k{i:05d}", b"v", ttl=0.05) for i in range(12_000)])
        await asyncio.sleep(0.2)  # every one expired
        await store.sweep()  # as its schedule would; the writes after it sweep the rest
        for i in range(3):
            await store.put(f"write{i}", b"v")
        raw_keys = list(store._db.iterator(include_value=False))  # white-box: what is on disk
        assert raw_keys == [b"dwrite0", b"dwrite1", b"dwrite2"]
    finally:
        await store.close()


async def test_open_store_accepts_absolute_and_relative_leveldb_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = open_store(f"leveldb://{tmp_path}/abs")
    relative = open_store("leveldb://./rel/data")
    bare = open_store("leveldb://bare")
    try:
        assert isinstance(absolute, LevelDBStore)
        assert isinstance(relative, LevelDBStore)
        assert isinstance(bare, LevelDBStore)
        assert absolute.path == str(tmp_path / "abs")
        assert relative.path == str(tmp_path / "rel" / "data")
        assert bare.path == str(tmp_path / "bare")
    finally:
        for store in (absolute, relative, bare):
            await store.close()


async def test_leveldb_keeps_writes_in_its_write_buffer_until_the_buffer_is_full(
    tmp_path: Path,
) -> None:
    """2 MB written: a 64 KiB buffer was flushed into tables many times, the default one (16
    MiB) holds it all (it stays in the log until the buffer fills)."""
    value = os.urandom(1000)  # incompressible
    tables = {}
    for size in (2**16, DEFAULT_WRITE_BUFFER):
        store = LevelDBStore(tmp_path / str(size), write_buffer_size=size)
        for start in range(0, 2000, 100):
            await store.batch([Put(f"k{i:05}", value) for i in range(start, start + 100)])
        assert await store.get("k01999") == value
        await store.close()
        tables[size] = len(list((tmp_path / str(size)).glob("*.ldb")))
    assert tables[2**16] > 0 and tables[DEFAULT_WRITE_BUFFER] == 0, tables


@pytest.mark.parametrize(
    ("size", "error"),
    [("16MB", TypeError), (True, TypeError), (1024, ValueError), (2**31, ValueError)],
)
def test_a_write_buffer_size_that_is_not_a_sane_int_is_refused(
    tmp_path: Path, size: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="write_buffer_size"):
        LevelDBStore(tmp_path / "db", write_buffer_size=size)  # type: ignore[arg-type]
    assert not (tmp_path / "db").exists()


def _tables_with_filters(directory: Path) -> int:
    """How many of LevelDB's table files carry a bloom filter (their meta index names it)."""
    return sum(b"BuiltinBloomFilter" in f.read_bytes() for f in directory.glob("*.ldb"))


async def _write_and_compact(directory: Path, keys: range) -> None:
    store = LevelDBStore(directory)
    try:
        await store.batch([Put(f"k{n:05}", b"v%d" % n) for n in keys])
        store._db.compact_range()  # into tables, as a long run's flushes would
    finally:
        await store.close()


async def test_tables_carry_bloom_filters_and_tables_without_them_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of absent keys (most of a step's) skip the tables a filter rules out; a store
    written without filters (an earlier version) reads the same, and back."""
    directory = tmp_path / "db"
    monkeypatch.setattr("store.leveldb.BLOOM_FILTER_BITS", 0)  # no filter: as before
    await _write_and_compact(directory, range(0, 2000))
    assert _tables_with_filters(directory) == 0
    monkeypatch.undo()
    await _write_and_compact(directory, range(2000, 4000))
    assert _tables_with_filters(directory) > 0
    store = LevelDBStore(directory)
    try:
        assert await store.get_many(["k00007", "k03999", "k04000", "absent"]) == [
            b"v7",
            b"v3999",
            None,
            None,
        ]
        assert len([key async for key, _ in store.scan("k")]) == 4000
    finally:
        await store.close()
