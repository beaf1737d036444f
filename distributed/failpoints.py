"""Failpoints: crash this process at a named point, to prove what survives a crash there.

Set ``FLOWLOOM_FAILPOINT`` to one name (or several, comma-separated) before the process starts;
when execution reaches ``failpoint(name)`` the process exits at once with ``os._exit(137)``, as
if SIGKILLed: no cleanup, no flush, no ack. Unset, a failpoint costs one set lookup.

Named points:

- ``after-lease``: a step's lease is taken, its node not yet run.
- ``before-commit``: the node has run, its outcome not yet recorded.
- ``after-commit``: a step's result is committed, its successors not yet scheduled.
- ``after-schedule``: successors are scheduled, the step's own scheduling record not yet cleared.
- ``owing-unschedule``: a step's advance is done and its removal from the agenda owed
  (``KVPersistence.unschedule_soon``), not yet written.
- ``before-ack``: the step is fully advanced, its message not yet acknowledged.
- ``after-final``: an execution's final status is stored (with its notice), not yet told to
  the hooks.
- ``after-generation``: a recovery's new generation is written (``start_generation``), the
  retention's expiry not yet taken back from the execution a second time.
"""

from __future__ import annotations

import logging
import os

__all__ = ["FAILPOINTS", "failpoint"]

FAILPOINTS = frozenset(
    {
        "after-lease",
        "before-commit",
        "after-commit",
        "after-schedule",
        "owing-unschedule",
        "before-ack",
        "after-final",
        "after-generation",
    }
)

log = logging.getLogger(__name__)

_ARMED = frozenset(os.environ.get("FLOWLOOM_FAILPOINT", "").split(","))  # read once, at start


def failpoint(name: str) -> None:
    """Exit the process at once if ``FLOWLOOM_FAILPOINT`` names this point."""
    assert name in FAILPOINTS, name
    if name in _ARMED:
        log.critical("failpoint %s: exiting", name)
        os._exit(137)
