"""CPU time and memory of processes, read from ``/proc`` (Linux; no psutil needed)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "TcpSocket",
    "anon_rss_mib",
    "cpu_seconds",
    "listener_pid",
    "peak_rss_mib",
    "rss_mib",
    "socket_inodes",
    "tcp_sockets",
    "thread_cpu_seconds",
    "tree",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a Celery prefork parent and its children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(tree(int(child)))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of ``pids`` (a process that is gone counts 0). This process's
    own is read at the clock's resolution: ``/proc`` counts in ticks of 10 ms, more than a
    small embedded batch spends."""
    me = os.getpid()
    return sum(
        time.process_time() if pid == me else _cpu(Path(f"/proc/{pid}/stat")) for pid in pids
    )


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of ``pid``, by thread id (LevelDB compacts in
    a thread of its own)."""
    return {int(task.name): _cpu(task / "stat") for task in Path(f"/proc/{pid}/task").glob("*")}


def _cpu(stat_file: Path) -> float:
    try:
        stat = stat_file.read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int) -> float:
    """Resident set size now (``VmRSS``), MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def anon_rss_mib(pid: int) -> float:
    """The anonymous part of the resident set (``RssAnon``: the heap, not mapped files such
    as LevelDB's table files, which the kernel may drop at any time), MiB."""
    return _status_kib(pid, "RssAnon") / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size over the process's life (``VmHWM``), MiB."""
    return _status_kib(pid, "VmHWM") / 1024


class TcpSocket(NamedTuple):
    """One row of ``/proc/net/tcp`` (or ``tcp6``)."""

    local_port: int
    remote_port: int
    listening: bool
    inode: str


def tcp_sockets() -> Iterator[TcpSocket]:
    """The TCP sockets of this machine, IPv4 and IPv6."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, remote = int(cols[1].rpartition(":")[2], 16), int(cols[2].rpartition(":")[2], 16)
            yield TcpSocket(local, remote, cols[3] == "0A", cols[9])  # 0A: LISTEN


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds (none if it is gone or not ours to see)."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` of this machine, if this user may see it."""
    listening = {s.inode for s in tcp_sockets() if s.listening and s.local_port == port}
    for proc in Path("/proc").glob("[0-9]*"):
        if listening & socket_inodes(int(proc.name)):
            return int(proc.name)
    return None
