"""What a node type receives when it runs: the node context and the engine's services."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from orchestration.jsonvalue import JSON

if TYPE_CHECKING:
    from orchestration.graph import Node
    from orchestration.providers.base import LLMProvider
    from orchestration.routing import NodeResult

__all__ = [
    "STREAM_TOKENS",
    "Emitter",
    "NodeContext",
    "NodeType",
    "Services",
    "TokenEmitter",
    "current_context",
    "current_emitter",
    "current_node_id",
    "current_token_emitter",
    "current_token_sink",
]

log = logging.getLogger(__name__)

Emitter = Callable[[str, Mapping[str, JSON]], None]
"""Receives a step's progress events: ``(message, data)``. Must not block or raise."""

TokenEmitter = Callable[[str], None]
"""Receives the text an LLM streams during a step's attempt, chunk by chunk, in order. Must not
block or raise."""

STREAM_TOKENS = "streamTokens"
"""The node parameter that turns token events off for one node: ``"streamTokens": false``."""

current_emitter: ContextVar[Emitter | None] = ContextVar("flowloom_current_emitter", default=None)
"""Where ``NodeContext.emit`` sends events when the context has no ``emitter`` of its own: set
by whatever runs the attempt (the distributed engine's event log sets it as a step starts)."""

current_token_emitter: ContextVar[TokenEmitter | None] = ContextVar(
    "flowloom_current_token_emitter", default=None
)
"""Where the running attempt's LLM text chunks go when its context has no ``token_emitter`` of
its own; set beside ``current_emitter`` (None: nobody listens, or token events are off for the
execution), so providers stream only when it is set."""

current_node_id: ContextVar[str | None] = ContextVar("flowloom_current_node_id", default=None)
"""Id of the node whose attempt is running in this task (set by ``Engine.run_node``)."""

current_context: ContextVar[NodeContext | None] = ContextVar(
    "flowloom_current_context", default=None
)
"""The ``NodeContext`` of the attempt running in this task (set by ``Engine.run_node``), for code
called from a step that is handed only the state (e.g. to derive idempotency keys)."""


@dataclass
class NodeContext:
    """One attempt of one node.

    ``state`` is a read-only view of the execution state: the initial inputs with the updates
    of the node's ancestors (the steps it is downstream of), in commit order; ``outputs`` maps
    the ids of those ancestors that completed to their outputs. A parallel branch is never part
    of it (see ``orchestration.state``), so a node sees the same in memory and distributed.
    Steps run at least once: use ``idempotency_key`` (``execution_id/node_id``) to make side
    effects idempotent.
    """

    execution_id: str
    node: Node
    state: Mapping[str, JSON]
    outputs: Mapping[str, JSON]
    attempt: int = 1
    idempotency_key: str = ""
    emitter: Emitter | None = None
    token_emitter: TokenEmitter | None = None

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            self.idempotency_key = f"{self.execution_id}/{self.node.id}"

    def emit(self, message: str, **data: JSON) -> None:
        """Report progress of this attempt (``ctx.emit("fetched", rows=120)``): in a distributed
        run it becomes a ``step.progress`` event of the execution's event log; where nothing
        listens it does nothing. Never raises; values should be JSON."""
        emitter = self.emitter or current_emitter.get()
        if emitter is None:
            return
        try:
            emitter(message, data)
        except Exception:  # an observer never breaks a step
            log.warning("progress event dropped", exc_info=True)

    def token_sink(self) -> TokenEmitter | None:
        """Where this attempt's LLM text chunks go (``step.token`` events in a distributed run),
        or None: nobody listens, or the node turned them off (``params.streamTokens: false``).
        LLM node types pass it to the provider (``complete_with_tokens``), which streams only
        when it is not None."""
        if self.node.params.get(STREAM_TOKENS) is False:
            return None
        return self.token_emitter or current_token_emitter.get()

    def emit_token(self, text: str) -> None:
        """Hand one chunk of streamed text to the token sink, if any (a node type that streams
        by itself). Never raises."""
        sink = self.token_sink()
        if sink is None or not text:
            return
        try:
            sink(text)
        except Exception:  # an observer never breaks a step
            log.warning("token chunk dropped", exc_info=True)


def current_token_sink() -> TokenEmitter | None:
    """The token sink of the attempt running in this task (see ``NodeContext.token_sink``), for
    code that is not handed the context (an ``Agent`` called from a step); None outside one."""
    ctx = current_context.get()
    return ctx.token_sink() if ctx is not None else current_token_emitter.get()


@dataclass(frozen=True)
class Services:
    """What the engine lends to node types: the LLM provider and the default model."""

    provider: LLMProvider
    default_model: str = "gpt-4o-mini"
    llm_timeout: float | None = 60.0


@runtime_checkable
class NodeType(Protocol):
    """The behaviour behind a node's ``type``: run one attempt and return a ``NodeResult``."""

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        """Run one attempt of ``node``."""
        ...
