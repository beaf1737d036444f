"""Property test: any sequence of operations leaves every backend in the state a dict model says."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_test_helpers import delete_redis_prefix, new_redis_prefix
from support import require_redis

from store import Delete, KVStore, LevelDBStore, MemoryStore, Put, RedisStore

KEYS = ["a", "a/b", "ab", "b", "é", "鍵", "🙂"]
COUNTER = re.compile(rb"0|-?[1-9][0-9]*")


@dataclass(frozen=True)
class Incr:
    key: str
    amount: int


@dataclass(frozen=True)
class CompareAndSet:
    key: str
    expected: bytes | None
    new: bytes


@dataclass(frozen=True)
class Batch:
    ops: tuple[Put | Delete, ...]


Op = Put | Delete | Incr | CompareAndSet | Batch

keys = st.sampled_from(KEYS)
values = st.one_of(st.binary(max_size=6), st.integers(-50, 50).map(lambda i: str(i).encode()))
simple_ops = st.one_of(st.builds(Put, keys, values, ttl=st.none()), st.builds(Delete, keys))
operations: st.SearchStrategy[Op] = st.one_of(
    simple_ops,
    st.builds(Incr, keys, st.integers(-5, 5)),
    st.builds(CompareAndSet, keys, st.none() | values, values),
    st.builds(Batch, st.lists(simple_ops, max_size=4).map(tuple)),
)


def apply_to_model(model: dict[str, bytes], op: Op) -> object:
    """Apply ``op`` to the dict model; return what the store call should return."""
    if isinstance(op, Put):
        model[op.key] = op.value
        return None
    if isinstance(op, Delete):
        return model.pop(op.key, None) is not None
    if isinstance(op, Incr):
        current = model.get(op.key, b"0")
        if not COUNTER.fullmatch(current):
            return ValueError
        model[op.key] = str(int(current) + op.amount).encode()
        return int(model[op.key])
    if isinstance(op, CompareAndSet):
        if model.get(op.key) != op.expected:
            return False
        model[op.key] = op.new
        return True
    for inner in op.ops:
        apply_to_model(model, inner)
    return None


async def apply_to_store(store: KVStore, op: Op) -> object:
    """Apply ``op`` to ``store``; return its result (``ValueError`` if it raised one)."""
    try:
        if isinstance(op, Put):
            await store.put(op.key, op.value)
            return None
        if isinstance(op, Delete):
            return await store.delete(op.key)
        if isinstance(op, Incr):
            return await store.incr(op.key, op.amount)
        if isinstance(op, CompareAndSet):
            return await store.compare_and_set(op.key, op.expected, op.new)
        await store.batch(op.ops)
        return None
    except ValueError:
        return ValueError


async def check_against_model(store: KVStore, ops: list[Op]) -> None:
    model: dict[str, bytes] = {}
    for op in ops:
        assert await apply_to_store(store, op) == apply_to_model(model, op), op
    assert [item async for item in store.scan("", page_size=2)] == sorted(model.items())
    assert await store.get_many(KEYS) == [model.get(key) for key in KEYS]


async def run_on_memory(ops: list[Op]) -> None:
    async with MemoryStore() as store:
        await check_against_model(store, ops)


async def run_on_leveldb(ops: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with LevelDBStore(directory) as store:
            await check_against_model(store, ops)


async def run_on_redis(ops: list[Op]) -> None:
    url, prefix = require_redis(), new_redis_prefix()
    try:
        async with RedisStore(url, prefix=prefix) as store:
            await check_against_model(store, ops)
    finally:
        await delete_redis_prefix(url, prefix)


RUNNERS: dict[str, Callable[[list[Op]], Coroutine[Any, Any, None]]] = {
    "memory": run_on_memory,
    "leveldb": run_on_leveldb,
    "redis": run_on_redis,
}


@pytest.mark.parametrize("backend", list(RUNNERS))
def test_any_sequence_of_operations_matches_a_dict_model(backend: str) -> None:
    if backend == "redis":
        require_redis()
    runner = RUNNERS[backend]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(operations, max_size=25))
    def check(ops: list[Op]) -> None:
        asyncio.run(runner(ops))

    check()
