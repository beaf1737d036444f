"""Running ``flowloom`` as users do: subprocesses, real signals, deadlines (never fixed sleeps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
T = TypeVar("T")

# Tansu: support.KAFKA_QUERY (written out: the CLI imports this module without tests/ on its path).
TANSU_QUERY = "session_timeout_ms=2000&heartbeat_interval_ms=250&fetch_max_wait_ms=20"


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: the repo and this folder importable, no key, no
    FLOWLOOM_*/REDIS_URL/KAFKA_BOOTSTRAP from the outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLOWLOOM_") and k not in ("REDIS_URL", "KAFKA_BOOTSTRAP")
    }
    env.pop("OPENAI_API_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    return {**env, **extra}


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m distributed ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "distributed", *args],
        cwd=cwd or ROOT,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(*args: str, env: dict[str, str], expect: int = 0) -> Any:
    """Run a command with ``--json``; check its exit code; return the parsed output."""
    done = cli(*args, "--json", env=env)
    assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def spawn(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Start ``python -m distributed ARGS`` in the background, stderr+stdout to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "distributed", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def eventually(probe: Callable[[], T], *, timeout: float = 30, message: str = "") -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message or 'condition not met'} within {timeout}s")
        time.sleep(0.05)


def wait_exit(proc: subprocess.Popen[str], timeout: float) -> int:
    """The exit code of ``proc`` once it exits (a deadline, not a sleep)."""
    return proc.wait(timeout=timeout)


def log_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts: killed (if still running) when it ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def delete_redis_prefix(prefix: str) -> None:
    """Remove what a test wrote to the shared Redis (only under its own prefix)."""
    import asyncio

    import redis.asyncio as aioredis
    from support import REDIS_URL

    from store import Delete, open_store

    async def delete() -> None:
        store = open_store(REDIS_URL, prefix=prefix)
        try:
            keys = [key async for key, _ in store.scan("")]
            for start in range(0, len(keys), 500):
                await store.batch([Delete(k) for k in keys[start : start + 500]])
        finally:
            await store.close()
        client = aioredis.Redis.from_url(REDIS_URL)  # and what scan does not list: event logs
        try:
            pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
            keys = [key async for key in client.scan_iter(match=pattern, count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(delete())


def new_tag() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"
