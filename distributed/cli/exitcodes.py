"""The exit codes of ``flowloom``, in one place (``flowloom --help`` prints this table).

====  ======================  ==============================================================
code  name                    meaning
====  ======================  ==============================================================
0     ``EXIT_OK``             done: the execution completed, the command did what it said
1     ``EXIT_FAILED``         the execution failed, or the command was refused in the
                              execution's state (cancel/pause a finished one, recover a
                              running one), or ``validate`` found problems
2     ``EXIT_USAGE``          a usage mistake or bad input: unknown option, workflow or
                              execution id, an invalid execution id (``distributed.ids``),
                              malformed JSON or blueprint, missing inputs, inputs over
                              the size limit (``FLOWLOOM_MAX_INPUTS_BYTES``)
3     ``EXIT_CANCELLED``      the execution was cancelled
4     ``EXIT_TIMED_OUT``      the execution timed out, or ``--timeout`` passed while waiting
5     ``EXIT_UNAVAILABLE``    a service cannot be reached or opened (Redis, Kafka, a LevelDB
                              directory another process holds)
70    ``EXIT_INTERNAL``       a bug: an unexpected error (``--debug`` shows the traceback)
130   ``EXIT_INTERRUPTED``    stopped by Ctrl-C / a second signal before finishing
====  ======================  ==============================================================
"""

from __future__ import annotations

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMED_OUT",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "exit_code_for_status",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_TIMED_OUT = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "completed / ok",
    EXIT_FAILED: "failed, or refused in the execution's state",
    EXIT_USAGE: "usage mistake or bad input (an invalid id, inputs over the limit, ...)",
    EXIT_CANCELLED: "cancelled",
    EXIT_TIMED_OUT: "timed out (the execution, or waiting for it)",
    EXIT_UNAVAILABLE: "a service is unavailable",
    EXIT_INTERNAL: "internal error (a bug; --debug shows it)",
    EXIT_INTERRUPTED: "interrupted",
}

_BY_STATUS = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "cancelled": EXIT_CANCELLED,
    "timed_out": EXIT_TIMED_OUT,
}


def exit_code_for_status(status: str) -> int:
    """The exit code of a command that waited for an execution ending with ``status``."""
    return _BY_STATUS.get(status, EXIT_OK)
