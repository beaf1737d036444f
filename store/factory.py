"""``open_store(url)``: pick and configure a backend from a URL.

Supported URLs::

    memory://                                   MemoryStore
    leveldb:///abs/path, leveldb://./rel/path   LevelDBStore (``leveldb://data`` is ``./data``)
    redis://[:password@]host:port/db?prefix=myapp:      RedisStore (also ``rediss://`` for TLS)

Keyword ``options`` go to the backend's constructor. ``check_store_url`` checks a URL without
opening anything (a Redis database that is not a number, a port out of range, a ``prefix`` a
key cannot start with, an option redis-py cannot read, an unknown scheme, a LevelDB URL without
a directory, text that is not UTF-8 or holds a control character); every problem with the URL
itself is an ``InvalidStoreURL``. Every URL an error shows has its password masked.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio.connection import parse_url as parse_redis_url

from store._common import check_prefix
from store.base import KVStore
from store.errors import InvalidStoreURL
from store.leveldb import LevelDBStore
from store.memory import MemoryStore
from store.redis import RedisStore, check_redis_url, split_prefix

__all__ = ["check_store_url", "open_store"]

_SCHEMES = ("memory", "leveldb", "redis", "rediss")
_REFUSED_REDIS_PARAMETERS = {
    # redis-py lets URL parameters override the keyword arguments: the store needs bytes.
    "decode_responses": "the store keeps bytes; decode_responses cannot be set",
}


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
    _check_text(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise InvalidStoreURL(url, f"unsupported scheme; use one of {', '.join(_SCHEMES)}")
    if scheme == "memory" and url.partition("://")[2]:
        raise InvalidStoreURL(url, "a memory:// URL takes no host, path or parameters")
    try:
        if scheme == "leveldb":
            _leveldb_path(url)
        if scheme in ("redis", "rediss"):
            _check_redis(url)
    except InvalidStoreURL:
        raise
    except ValueError as exc:  # what urllib says of a URL it cannot split (or a bad port)
        raise InvalidStoreURL(url, str(exc)) from None
    return scheme


def _check_text(url: str) -> None:
    """A URL is printable UTF-8 text: no lone surrogates, no control characters (NUL, newline)."""
    for index, char in enumerate(url):
        category = unicodedata.category(char)
        if category == "Cs":
            raise InvalidStoreURL(url, f"not UTF-8 text (a lone surrogate at position {index})")
        if category == "Cc":
            raise InvalidStoreURL(url, f"a control character (U+{ord(char):04X}) at {index}")


def _check_redis(url: str) -> None:
    check_redis_url(url)
    parts = urlsplit(url)
    parts.port  # noqa: B018  # raises ValueError for a port that is not a number in 0-65535
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name in _REFUSED_REDIS_PARAMETERS:
            raise InvalidStoreURL(url, _REFUSED_REDIS_PARAMETERS[name])
    client_url, prefix = split_prefix(url)
    if prefix is not None:
        try:
            check_prefix(prefix)
        except ValueError as exc:
            raise InvalidStoreURL(url, f"prefix: {exc}") from None
    parse_redis_url(client_url)  # redis-py's own reading of the options: ValueError if bad


def _leveldb_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidStoreURL(url, "a leveldb:// URL takes no parameters; pass keyword options")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise InvalidStoreURL(url, "no directory given (leveldb:///abs/path or leveldb://./rel)")
    if "\x00" in path:
        raise InvalidStoreURL(url, "the directory contains NUL (%00)")
    try:
        os.fsencode(path)
    except UnicodeError:
        raise InvalidStoreURL(url, "the directory is not a file name this system can use") from None
    return os.path.expanduser(path)
