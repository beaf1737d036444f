"""``python -m benchmarks.round_trips DIR MODULE``: counts each request a process and its forked
children write to Redis (sync and asyncio redis-py), on a real Redis, in a real subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import require_redis

from benchmarks import round_trips

ROOT = Path(__file__).resolve().parents[1]

# Connects a sync and an asyncio client (each pings once), then, with ``--requests``: 20 GETs,
# one pipeline of 10, 15 asyncio GETs, and a forked child's 5 GETs on a connection of its own;
# without, the child only pings. So the two runs differ by 20 + 1 + 15 + 5 requests.
PROBE = """
import asyncio, os, sys, time
import redis, redis.asyncio as aioredis

url, many = sys.argv[1], sys.argv[2:] == ["--requests"]
client = redis.Redis.from_url(url)
client.ping()

async def on_asyncio():
    async_client = aioredis.Redis.from_url(url)
    await async_client.ping()
    for _ in range(15 if many else 0):
        await async_client.get("flowloom-round-trips-probe")
    await async_client.aclose()

asyncio.run(on_asyncio())
for _ in range(20 if many else 0):
    client.get("flowloom-round-trips-probe")
if many:
    pipe = client.pipeline()
    for _ in range(10):
        pipe.get("flowloom-round-trips-probe")
    pipe.execute()
child = os.fork()
if child == 0:
    own = redis.Redis.from_url(url)
    own.ping()
    for _ in range(5 if many else 0):
        own.get("flowloom-round-trips-probe")
    time.sleep(0.1)  # its count is written every INTERVAL (a forked child has no atexit)
    os._exit(0)
os.waitpid(child, 0)
"""


def run_probe(tmp_path: Path, name: str, *args: str) -> int:
    (tmp_path / "round_trips_probe.py").write_text(PROBE)
    counted = tmp_path / name
    counted.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    command = round_trips.command(counted, ["round_trips_probe", require_redis(), *args])
    subprocess.run(command, env=env, check=True, timeout=60)
    counts = [path for path in counted.iterdir() if not path.suffix]  # not a write under way
    assert len(counts) == 2, "the parent's count and the child's"
    return round_trips.total(counted)


def test_every_request_of_a_process_and_its_forked_child_is_counted(tmp_path: Path) -> None:
    connecting = run_probe(tmp_path, "connect-only")
    assert connecting >= 3  # each client's handshake and ping, at least
    assert run_probe(tmp_path, "requests", "--requests") - connecting == 20 + 1 + 15 + 5
