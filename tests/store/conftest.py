"""Fixtures for the store tests: one ``store`` fixture parametrised over every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from support import require_redis

from store import KVStore, LevelDBStore, MemoryStore, RedisStore

BACKENDS = ["memory", "leveldb", "redis"]


async def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (and nothing else)."""
    client = aioredis.Redis.from_url(url)
    try:
        pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix) + "*"
        keys = [key async for key in client.scan_iter(match=pattern, count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """``(redis_url, unique prefix)``; every key under the prefix is deleted afterwards."""
    url, prefix = require_redis(), new_redis_prefix()
    yield url, prefix
    await delete_redis_prefix(url, prefix)


def new_redis_prefix() -> str:
    """A prefix no other test or program uses."""
    return f"flowloom-test-{uuid.uuid4().hex}:"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KVStore]:
    """A fresh, empty store of each backend, closed (and its Redis keys deleted) afterwards."""
    backend: str = request.param
    if backend == "memory":
        kv: KVStore = MemoryStore()
    elif backend == "leveldb":
        kv = LevelDBStore(tmp_path / "leveldb")
    else:
        url, prefix = require_redis(), new_redis_prefix()
        kv = RedisStore(url, prefix=prefix)
    try:
        yield kv
    finally:
        await kv.close()
        if backend == "redis":
            await delete_redis_prefix(url, prefix)
