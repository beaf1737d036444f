"""Throughput of the store backends: ``python benchmarks/store_bench.py [--n 5000]``.

Runs put / get / incr / batch (and get_many, scan) against memory, LevelDB (a temporary directory)
and Redis (a temporary key prefix, deleted afterwards) and prints operations per second. Operations
are awaited one after another, so the Redis figures are bounded by the round-trip time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from store import KVStore, LevelDBStore, MemoryStore, Put, RedisStore, StoreError

BATCH_SIZE = 100
COLUMNS = ["put", "get", "get_many", "incr", "batch", "scan"]


async def timed(ops: int, run: Callable[[], Awaitable[None]]) -> float:
    """Run ``run`` once and return ``ops`` per second."""
    started = time.perf_counter()
    await run()
    return ops / (time.perf_counter() - started)


async def measure(store: KVStore, n: int) -> dict[str, float]:
    """Return ops/s for each column, on ``n`` keys of 100-byte values."""
    keys = [f"bench:{i:08d}" for i in range(n)]
    value = os.urandom(100)

    async def put() -> None:
        for key in keys:
            await store.put(key, value)

    async def get() -> None:
        for key in keys:
            await store.get(key)

    async def get_many() -> None:
        for i in range(0, n, BATCH_SIZE):
            await store.get_many(keys[i : i + BATCH_SIZE])

    async def incr() -> None:
        for _ in range(n):
            await store.incr("bench-counter")

    async def batch() -> None:
        for i in range(0, n, BATCH_SIZE):
            await store.batch([Put(key, value) for key in keys[i : i + BATCH_SIZE]])

    async def scan() -> None:
        async for _ in store.scan("bench:"):
            pass

    runs = [put, get, get_many, incr, batch, scan]
    return {name: await timed(n, run) for name, run in zip(COLUMNS, runs, strict=True)}


async def bench_redis(url: str, n: int) -> dict[str, float] | str:
    prefix = f"flowloom-bench-{uuid.uuid4().hex}:"
    store = RedisStore(url, prefix=prefix)
    try:
        return await measure(store, n)
    except StoreError as exc:
        return f"skipped ({exc})"
    finally:
        await store.close()
        client = aioredis.Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
        except (OSError, RedisError):
            pass  # Redis is unreachable: nothing to clean
        finally:
            await client.aclose()


async def bench_leveldb(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="flowloom-bench-") as directory:
        store = LevelDBStore(directory)
        try:
            return await measure(store, n)
        finally:
            await store.close()


async def bench_memory(n: int) -> dict[str, float]:
    store = MemoryStore()
    try:
        return await measure(store, n)
    finally:
        await store.close()


def print_table(results: dict[str, dict[str, float] | str], n: int) -> None:
    print(
        f"store backends, n={n}, ops/s (get_many/batch: keys or ops per second, size {BATCH_SIZE})"
    )
    print(f"{'backend':<10}" + "".join(f"{name:>12}" for name in COLUMNS))
    for backend, row in results.items():
        if isinstance(row, str):
            print(f"{backend:<10}  {row}")
        else:
            print(f"{backend:<10}" + "".join(f"{row[name]:>12,.0f}" for name in COLUMNS))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="operations per measurement")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    results: dict[str, dict[str, float] | str] = {
        "memory": await bench_memory(args.n),
        "leveldb": await bench_leveldb(args.n),
        "redis": await bench_redis(args.redis_url, args.n),
    }
    print_table(results, args.n)


if __name__ == "__main__":
    asyncio.run(main())
