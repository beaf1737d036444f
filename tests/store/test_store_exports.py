"""The public API of ``store`` is explicit and pinned."""

from __future__ import annotations

import store


def test_the_public_names_of_store_are_pinned() -> None:
    assert store.__all__ == [
        "Delete",
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


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in store.__all__:
        member = getattr(store, name)
        assert member.__doc__, name
