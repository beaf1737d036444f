"""Client CPU of a Redis commit-sized write at several concurrencies:
``python -m benchmarks.commit_bench [--calls 400] [--concurrency 1,8,32]``.

Each of N concurrent callers makes ``--calls`` conditional writes one after another
(``batch_if_get``: a 200-byte record put if absent, a second key, the record read back), the
shape of a step's commit, against a temporary key prefix (deleted afterwards). Prints, per
concurrency, this process's CPU per call and calls per second: what ``RedisStore`` costs a
worker per store call, and how much coalescing the calls of one event-loop turn into one round
trip (``store._redis_pipe``) saves when several steps commit at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from store import Put, RedisStore

from .flowloom_run import delete_keys

__all__ = ["measure"]


async def measure(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """(µs of CPU per call, calls per second) for ``concurrency`` callers of ``calls`` each."""
    prefix = f"flowloom-commit-bench-{uuid.uuid4().hex[:10]}:"
    store = RedisStore(url, prefix=prefix)

    async def caller(who: int) -> None:
        for i in range(calls):
            key = f"step/{who}/{i}"
            await store.batch_if_get(
                {key: None}, [Put(key, b"x" * 200), Put(f"agenda/{key}", b"")], [key]
            )

    try:
        await store.batch_if({}, [Put("warm", b"")])  # the scripts loaded, the index swept
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(who) for who in range(concurrency)))
        done = calls * concurrency
        return (time.process_time() - cpu) / done * 1e6, done / (time.perf_counter() - wall)
    finally:
        await store.close()
        await delete_keys(url, prefix)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="writes per caller")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated caller counts")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    print("| callers | client CPU µs/call | calls/s |")
    print("| ---: | ---: | ---: |")
    for concurrency in (int(n) for n in args.concurrency.split(",")):
        cpu, rate = await measure(args.redis_url, args.calls, concurrency)
        print(f"| {concurrency} | {cpu:,.0f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
