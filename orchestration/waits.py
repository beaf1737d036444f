"""Waits for people and events (DESIGN §3), shared by both engines.

A ``wait`` node (``{"uses": "wait", "params": {"event": "review", "timeout": 60000,
"onTimeout": "timeout", "outputKey": "decision"}}``) parks its branch until a signal for its
``event`` arrives: ``signal(execution_id, event, payload, action)``. The node's output is the
payload and its routing action the signal's action, so ``review -approve-> publish`` and
``review -reject-> revise`` route by the person's choice. ``timeout`` is in milliseconds; when
it passes, the wait completes with the ``onTimeout`` action (and no payload), or -- without
``onTimeout`` -- fails with ``WaitTimedOut``.

Exactly once: each event of an execution takes one signal. A signal that arrives before its
wait is reached is kept and consumed when the wait is reached; a second signal for the same
event, a signal after the wait timed out, or one for an event no wait of the workflow has, is
refused with ``SignalRefused``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from orchestration.errors import SignalRefused, WaitTimedOut
from orchestration.graph import Graph, Node
from orchestration.jsonvalue import JSON
from orchestration.routing import NodeResult

__all__ = ["WAIT", "Signal", "SignalBox", "WaitSpec", "timed_out_result", "waits_of"]

WAIT = "wait"
"""The node type of waits."""


@dataclass(frozen=True)
class WaitSpec:
    """What a wait node waits for: ``event``, at most ``timeout`` seconds, then ``on_timeout``."""

    event: str
    timeout: float | None = None
    on_timeout: str | None = None
    output_key: str | None = None

    @classmethod
    def of(cls, node: Node) -> WaitSpec:
        params = node.params
        timeout = params.get("timeout")
        on_timeout, key = params.get("onTimeout"), params.get("outputKey")
        return cls(
            event=str(params["event"]),
            timeout=float(timeout) / 1000 if isinstance(timeout, int | float) else None,
            on_timeout=on_timeout if isinstance(on_timeout, str) else None,
            output_key=key if isinstance(key, str) else None,
        )

    def problems(self) -> list[str]:
        found = [] if self.event else ["params.event must name the event to wait for"]
        if self.timeout is not None and not self.timeout > 0:
            found.append("params.timeout must be a positive number of milliseconds")
        return found


@dataclass(frozen=True)
class Signal:
    """A signal for ``event``: the wait's output is ``payload``, its action ``action``."""

    event: str
    payload: JSON = None
    action: str | None = None

    def result(self, spec: WaitSpec) -> NodeResult:
        updates = {spec.output_key: self.payload} if spec.output_key else {}
        return NodeResult(output=self.payload, action=self.action, state_updates=updates)


def timed_out_result(node_id: str, spec: WaitSpec) -> NodeResult:
    """The result of a wait whose timeout passed: its ``on_timeout`` action, or an error."""
    if spec.on_timeout is None:
        raise WaitTimedOut(node_id, spec.event, spec.timeout or 0.0)
    return NodeResult(output=None, action=spec.on_timeout)


def waits_of(graph: Graph) -> dict[str, str]:
    """``{event: wait node id}`` of a graph."""
    return {WaitSpec.of(n).event: n.id for n in graph.nodes.values() if n.type == WAIT}


class SignalBox:
    """The signals of one in-memory execution: delivered once, received by the wait."""

    def __init__(self, execution_id: str, graph: Graph) -> None:
        self.execution_id = execution_id
        self.events = waits_of(graph)
        self._signals: dict[str, Signal] = {}
        self._closed: set[str] = set()  # events whose wait completed
        self._arrived: dict[str, asyncio.Event] = {}

    def deliver(self, signal: Signal) -> None:
        """Keep ``signal`` for its wait; ``SignalRefused`` if no wait can take it."""
        event = signal.event
        if event not in self.events:
            known = ", ".join(sorted(self.events)) or "none"
            raise SignalRefused(self.execution_id, event, f"no wait for it (waits: {known})")
        if event in self._signals or event in self._closed:
            raise SignalRefused(self.execution_id, event, "its wait already took a signal")
        self._signals[event] = signal
        self._arrival(event).set()

    async def receive(self, spec: WaitSpec) -> Signal | None:
        """The signal for ``spec.event`` (kept or awaited); None when the timeout passed."""
        try:
            async with asyncio.timeout(spec.timeout):
                await self._arrival(spec.event).wait()
        except TimeoutError:
            self._closed.add(spec.event)
            return None
        self._closed.add(spec.event)
        return self._signals[spec.event]

    def _arrival(self, event: str) -> asyncio.Event:
        return self._arrived.setdefault(event, asyncio.Event())
