"""Redis round trips, counted inside the processes that make them.

``MONITOR`` (``redis_count``) sees commands, not round trips: the commands of a pipeline, of a
``MULTI``/``EXEC`` block, or the script calls a Flowloom store coalesces in one event-loop turn
reach Redis in one write and are answered together, yet count one each. Redis 7.0 keeps no
count of a client's requests. So the benchmark runs its worker processes (Flowloom's and
Celery's) as ``python -m benchmarks.round_trips DIR MODULE ARGS...``: every request redis-py
writes (``send_packed_command``, sync and asyncio: one per command sent alone, one per pipeline
or batch of scripts, a connection's handshake and a health check's ``PING`` included; the
caller then waits for the replies, so each write is a round trip) is counted, and the
process's count is written to ``DIR/<pid>`` every ``INTERVAL`` seconds and at exit; then
``MODULE`` runs as ``python -m MODULE ARGS...`` would. A forked child (Celery's prefork
pool) counts apart, from 0. ``total(DIR)`` sums every process's count, those that exited
included.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["INTERVAL", "command", "install", "total"]

INTERVAL = 0.02  # seconds between two writes of a process's count


class _Counter:
    """This process's requests, written to ``directory/<pid>`` by a daemon thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests = 0
        self._writing = threading.Lock()  # the thread's writes and the one at exit

    def start(self) -> None:
        self.requests = 0
        self._writing = threading.Lock()  # a forked child's: its parent's may be held
        threading.Thread(target=self._write_every, daemon=True).start()

    def write(self) -> None:
        path = self.directory / str(os.getpid())
        written = path.with_suffix(".new")
        with self._writing:
            written.write_text(str(self.requests))
            written.replace(path)  # a reader sees the last count whole, never a torn file

    def _write_every(self) -> None:
        while True:
            self.write()
            time.sleep(INTERVAL)


def install(directory: Path) -> None:
    """Count this process's Redis requests (and its forked children's) into ``directory``."""
    import redis.asyncio.connection as async_connection
    import redis.connection as sync_connection

    counter = _Counter(directory)
    send_async: Callable[..., Awaitable[None]] = (
        async_connection.AbstractConnection.send_packed_command
    )
    send_sync: Callable[..., None] = sync_connection.AbstractConnection.send_packed_command

    async def counted_async(self: Any, command: Any, check_health: bool = True) -> None:
        counter.requests += 1
        await send_async(self, command, check_health)

    def counted_sync(self: Any, command: Any, check_health: bool = True) -> None:
        counter.requests += 1
        send_sync(self, command, check_health)

    async_connection.AbstractConnection.send_packed_command = counted_async  # type: ignore[method-assign]
    sync_connection.AbstractConnection.send_packed_command = counted_sync  # type: ignore[method-assign]
    os.register_at_fork(after_in_child=counter.start)
    atexit.register(counter.write)
    counter.start()


def total(directory: Path) -> int:
    """The requests of every process counted into ``directory`` so far."""
    return sum(int(path.read_text()) for path in directory.iterdir() if not path.suffix)


def command(directory: Path, module_args: list[str]) -> list[str]:
    """The command line that runs ``python -m`` with ``module_args``, counted into
    ``directory``."""
    return [sys.executable, "-m", "benchmarks.round_trips", str(directory), *module_args]


def main() -> None:
    directory, module, *args = sys.argv[1:]
    install(Path(directory))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
