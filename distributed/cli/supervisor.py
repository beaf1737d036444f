"""``flowloom worker --processes N``: N worker processes, each restarted when it dies.

A child that exits while the supervisor is not stopping is restarted after a back-off that
doubles with each recent death (0.5 s, 1 s, 2 s ... up to 30 s). More than ``MAX_RESTARTS``
deaths of one child within ``RESTART_WINDOW`` seconds is a crash loop: the supervisor stops
every child and exits 1. On SIGTERM/SIGINT the supervisor sends SIGTERM to each child (each
stops in phases) and waits for them; a second signal kills them and exits 130 at once.

Children run in their own session (a terminal's Ctrl-C reaches only the supervisor, which
forwards one SIGTERM) and stop by themselves when the supervisor is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque

from .exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .worker import SUPERVISOR_ENV

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "child_command", "supervise"]

log = logging.getLogger("flowloom.supervisor")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
_FIRST_BACKOFF, _MAX_BACKOFF = 0.5, 30.0


def child_command(argv: list[str]) -> list[str]:
    """The command of one child: this ``worker`` command without ``--processes``."""
    rest: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--processes", "--metrics-port"):
            skip = True
        elif not arg.startswith(("--processes=", "--metrics-port=")):
            rest.append(arg)
    return [sys.executable, "-m", "distributed", *rest]


class _Supervisor:
    def __init__(self, command: list[str], count: int, metrics_port: int | None) -> None:
        self.command = command
        self.count = count
        self.metrics_port = metrics_port
        self.stopping = asyncio.Event()
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.crash_loop = False
        self.forced = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        log.info("supervisor (pid %d) starting %d worker processes", os.getpid(), self.count)
        await asyncio.gather(*(self._keep(slot) for slot in range(self.count)))
        log.info("supervisor stopped")
        if self.forced:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.crash_loop else EXIT_OK

    def _on_signal(self, signum: int) -> None:
        if self.stopping.is_set():
            log.warning("second signal: killing the worker processes")
            self.forced = True
            self._send(signal.SIGKILL)
            return
        log.info("signal %d: stopping the worker processes gracefully", signum)
        self.stopping.set()
        self._send(signal.SIGTERM)

    def _send(self, signum: int) -> None:
        for child in self.children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    async def _keep(self, slot: int) -> None:
        """Run child ``slot`` until stopping, restarting it with back-off when it dies."""
        deaths: deque[float] = deque()
        while not self.stopping.is_set():
            code = await self._run_child(slot)
            if self.stopping.is_set():
                return
            now = time.monotonic()
            deaths.append(now)
            while deaths and now - deaths[0] > RESTART_WINDOW:
                deaths.popleft()
            if len(deaths) > MAX_RESTARTS:
                log.error(
                    "worker %d died %d times within %gs: a crash loop; stopping",
                    slot,
                    len(deaths),
                    RESTART_WINDOW,
                )
                self.crash_loop = True
                self.stopping.set()
                self._send(signal.SIGTERM)
                return
            delay = min(_FIRST_BACKOFF * 2 ** (len(deaths) - 1), _MAX_BACKOFF)
            log.warning("worker %d exited with code %s; restarting in %.1fs", slot, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _run_child(self, slot: int) -> int | None:
        env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
        if self.metrics_port is not None:  # one port each: PORT, PORT+1, ...
            env["FLOWLOOM_METRICS_PORT"] = str(self.metrics_port + slot)
        child = await asyncio.create_subprocess_exec(*self.command, env=env, start_new_session=True)
        self.children[slot] = child
        log.info("worker %d started (pid %d)", slot, child.pid)
        return await child.wait()


async def supervise(argv: list[str], count: int, *, metrics_port: int | None = None) -> int:
    """Run ``count`` children of this worker command (``argv``) under supervision; with
    ``metrics_port``, child ``i`` serves ``/metrics`` on ``metrics_port + i``."""
    return await _Supervisor(child_command(argv), count, metrics_port).run()
