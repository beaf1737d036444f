"""Flowloom's key-value persistence: the ``KVStore`` protocol and its backends.

``open_store("memory://" | "leveldb://./data" | "redis://host:6379/0?prefix=app:")`` returns a
store; backends offer get/put/delete/scan/batch (of ``Put``, ``Delete`` and ``Incr``) and the
atomics (compare-and-set, set-if-absent, incr, TTL). Higher-level records (leases, join
ledgers, statuses) live in ``distributed/``.
"""

from store.base import Delete, Incr, KVStore, Put
from store.errors import InvalidStoreURL, StoreClosed, StoreError, StoreLocked, StoreUnavailable
from store.factory import open_store
from store.leveldb import LevelDBStore
from store.memory import MemoryStore
from store.redis import RedisStore

__all__ = [
    "Delete",
    "Incr",
    "InvalidStoreURL",
    "KVStore",
    "LevelDBStore",
    "MemoryStore",
    "Put",
    "RedisStore",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "open_store",
]
