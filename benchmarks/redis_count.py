"""Redis commands per client process, counted with ``MONITOR``.

``INFO commandstats`` counts every client of the server, and the benchmark shares its Redis with
other users (test suites running beside it), so its deltas cannot be told apart from theirs.
``MONITOR`` shows each command with its database and client address; a client's port maps to
the process that holds the socket (``/proc/<pid>/fd`` -> ``/proc/net/tcp``). Commands a Lua
script runs (client ``lua``) are counted apart, when their text contains ``marker`` (the run's
key prefix). A pipeline or ``MULTI``/``EXEC`` block counts each of its commands, so these are
commands, an upper bound of round trips.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from .procstats import socket_inodes, tcp_sockets

__all__ = ["CommandCount", "Monitor", "redis_ports"]


def redis_ports(pids: Iterable[int], redis_port: int) -> set[int]:
    """Local ports of the TCP connections ``pids`` hold to ``redis_port``."""
    inodes: set[str] = set()
    for pid in pids:
        inodes |= socket_inodes(pid)
    return {
        s.local_port for s in tcp_sockets() if s.inode in inodes and s.remote_port == redis_port
    }


@dataclass
class CommandCount:
    """Commands seen, by client port and command name, plus Lua-run commands by name."""

    by_port: dict[int, Counter[str]] = field(default_factory=dict)
    lua: Counter[str] = field(default_factory=Counter)

    def of(self, ports: set[int]) -> Counter[str]:
        total: Counter[str] = Counter()
        for port in ports:
            total.update(self.by_port.get(port, Counter()))
        return total


class Monitor:
    """``with Monitor(url, db, marker) as m:`` counts the commands of ``db`` until the block ends;
    ``m.count`` is then the ``CommandCount``."""

    def __init__(self, url: str, db: int, marker: str) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self.db = db
        self.marker = marker
        self.count = CommandCount()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        if not self._ready.wait(5.0):
            raise TimeoutError("MONITOR did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.client.ping()  # one more line for the monitor to read, so it sees the stop
        self._thread.join(5.0)
        self.client.close()

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while not self._stop.is_set():
                self._record(monitor.next_command())

    def _record(self, entry: dict[str, Any] | None) -> None:
        if not entry or entry["db"] != self.db:
            return
        name = entry["command"].split(" ", 1)[0].upper()
        if entry["client_type"] == "lua":
            if self.marker in entry["command"]:
                self.count.lua[name] += 1
        elif entry["client_type"] == "tcp":
            port = int(entry["client_port"])
            self.count.by_port.setdefault(port, Counter())[name] += 1
