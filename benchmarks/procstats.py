"""CPU time and memory of processes, read from ``/proc`` (Linux; no psutil needed)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "anon_rss_mib",
    "cpu_seconds",
    "listener_pid",
    "peak_rss_mib",
    "rss_mib",
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
    """User + system CPU seconds of ``pids`` (a process that is gone counts 0)."""
    return sum(_cpu(Path(f"/proc/{pid}/stat")) for pid in pids)


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


def listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` of this machine (IPv4 or IPv6), if this user may
    see it: the socket's inode in ``/proc/net/tcp*``, then the process holding it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:
            continue
    return None
