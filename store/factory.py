"""``open_store(url)``: pick and configure a backend from a URL.

Supported URLs::

    memory://                                   MemoryStore
    leveldb:///abs/path, leveldb://./rel/path   LevelDBStore (``leveldb://data`` is ``./data``)
    redis://[:password@]host:port/db?prefix=myapp:      RedisStore (also ``rediss://`` for TLS)

Keyword ``options`` go to the backend's constructor. ``check_store_url`` checks a URL without
opening anything (a Redis database that is not a number, an unknown scheme, a LevelDB URL
without a directory). Every URL an error shows has its password masked.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from store.base import KVStore
from store.errors import InvalidStoreURL
from store.leveldb import LevelDBStore
from store.memory import MemoryStore
from store.redis import RedisStore, check_redis_url

__all__ = ["check_store_url", "open_store"]

_SCHEMES = ("memory", "leveldb", "redis", "rediss")


def open_store(url: str, **options: Any) -> KVStore:
    """Return the store named by ``url`` (see the module docstring); nothing is awaited yet."""
    scheme = check_store_url(url)
    if scheme == "memory":
        return MemoryStore(**options)
    if scheme == "leveldb":
        return LevelDBStore(_leveldb_path(url), **options)
    return RedisStore(url, **options)


def check_store_url(url: str) -> str:
    """Check ``url`` without opening anything; return its scheme. Raises ``InvalidStoreURL``."""
    if not isinstance(url, str):
        raise InvalidStoreURL(repr(url), "a store URL must be a str")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise InvalidStoreURL(url, f"unsupported scheme; use one of {', '.join(_SCHEMES)}")
    if scheme == "memory" and url.partition("://")[2]:
        raise InvalidStoreURL(url, "a memory:// URL takes no host, path or parameters")
    if scheme == "leveldb":
        _leveldb_path(url)
    if scheme in ("redis", "rediss"):
        check_redis_url(url)
    return scheme


def _leveldb_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidStoreURL(url, "a leveldb:// URL takes no parameters; pass keyword options")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise InvalidStoreURL(url, "no directory given (leveldb:///abs/path or leveldb://./rel)")
    return os.path.expanduser(path)
