"""Fixtures for the store tests: one ``store`` fixture parametrised over every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_test_helpers import delete_redis_prefix, new_redis_prefix
from support import require_redis

from store import KVStore, LevelDBStore, MemoryStore, RedisStore

BACKENDS = ["memory", "leveldb", "redis"]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """``(redis_url, unique prefix)``; every key under the prefix is deleted afterwards."""
    url, prefix = require_redis(), new_redis_prefix()
    yield url, prefix
    await delete_redis_prefix(url, prefix)


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
