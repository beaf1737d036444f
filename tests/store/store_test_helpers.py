"""Helpers for the store tests (a uniquely named module, importable from every test file)."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis


async def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (and nothing else)."""
    client = aioredis.Redis.from_url(url)
    try:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        keys = [key async for key in client.scan_iter(match=pattern, count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def new_redis_prefix() -> str:
    """A prefix no other test or program uses."""
    return f"flowloom-test-{uuid.uuid4().hex}:"
