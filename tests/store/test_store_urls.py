"""``open_store`` URL handling and the error types."""

from __future__ import annotations

import pytest

from store import (
    InvalidStoreURL,
    MemoryStore,
    RedisStore,
    StoreClosed,
    StoreError,
    StoreLocked,
    StoreUnavailable,
    open_store,
)
from store.errors import mask_url


async def test_memory_urls_open_a_memory_store() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.close()


async def test_redis_urls_open_a_redis_store_with_the_prefix_from_the_query() -> None:
    store = open_store("redis://127.0.0.1:6379/3?prefix=myapp%3A", socket_timeout=1.0)
    assert isinstance(store, RedisStore)
    assert store.prefix == "myapp:"
    await store.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://db/1", "unsupported scheme"),
        ("data/dir", "unsupported scheme"),
        ("memory://somewhere", "no host"),
        ("leveldb://", "no directory"),
        ("leveldb:///tmp/x?cache=1", "no parameters"),
        ("redis://h/0?prefix=a&prefix=b", "more than once"),
    ],
)
def test_open_store_rejects_urls_it_cannot_serve(url: str, reason: str) -> None:
    with pytest.raises(InvalidStoreURL, match=reason):
        open_store(url)


def test_an_invalid_store_url_error_masks_the_password() -> None:
    with pytest.raises(InvalidStoreURL) as caught:
        open_store("redis://:hunter2@h/0?prefix=a&prefix=b")
    assert "hunter2" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/0?prefix=a:", "redis://user:***@host/0?prefix=a:"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("leveldb:///data", "leveldb:///data"),
        ("redis://host:6379/0?password=secret", "redis://host:6379/0?password=***"),
        ("redis://u:secret@h/0?prefix=p:&password=s2", "redis://u:***@h/0?prefix=p:&password=***"),
        ("redis://h/0?prefix=app%3A&db=2", "redis://h/0?prefix=app%3A&db=2"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_every_store_error_derives_from_store_error() -> None:
    for error in (StoreUnavailable, StoreLocked, StoreClosed, InvalidStoreURL):
        assert issubclass(error, StoreError)


def test_store_unavailable_carries_the_masked_url() -> None:
    error = StoreUnavailable("redis://:pw@h:1/0", "connection refused")
    assert error.url == "redis://:***@h:1/0"
    assert str(error) == "store redis://:***@h:1/0 is unavailable: connection refused"


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0?password=hunter2", "redis://ada:hunter2@127.0.0.1:1/0"]
)
async def test_an_unreachable_redis_store_never_shows_its_password(url: str) -> None:
    store = open_store(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        assert "hunter2" not in repr(store)
        with pytest.raises(StoreUnavailable) as caught:
            await store.get("k")
    finally:
        await store.close()
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.url
    assert "***" in caught.value.url


@pytest.mark.parametrize(
    "url", ["postgres://db/1?password=hunter2", "redis://h/0?password=hunter2&prefix=a&prefix=b"]
)
def test_an_invalid_store_url_with_a_password_parameter_masks_it(url: str) -> None:
    with pytest.raises(InvalidStoreURL) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value) and "password=***" in str(caught.value)
