"""Flowloom's key-value persistence: the ``KVStore`` protocol and its backends.

``open_store("memory://" | "leveldb://./data" | "redis://host:6379/0?prefix=app:")`` returns a
store; backends offer get/put/delete/scan/batch (of ``Put``, ``Delete``, ``Incr`` and
``Publish``) and the atomics (compare-and-set, set-if-absent, incr, TTL). Higher-level records
(leases, join ledgers, statuses) live in ``distributed/``.
"""

from store.base import Delete, Incr, KVStore, Publish, Put
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
    "Publish",
    "Put",
    "RedisStore",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "open_store",
]
