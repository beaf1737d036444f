"""The ``LLMProvider`` protocol, the optional ``StreamingProvider`` one, and the values they
exchange.

A provider only has to answer (``complete``). One that can also stream offers ``stream``: the
same answer, with each text chunk handed to ``on_token`` as it arrives. Callers go through
``complete_with_tokens``, which streams when someone listens for tokens and the provider can,
and otherwise makes the plain call, so providers written before streaming existed keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, runtime_checkable

__all__ = [
    "Completion",
    "LLMProvider",
    "Message",
    "StreamingProvider",
    "TokenSink",
    "complete_with_tokens",
    "prompt_text",
]

log = logging.getLogger(__name__)

TokenSink = Callable[[str], None]
"""Receives the text chunks of a streamed answer, in order (their concatenation is the text)."""


class Message(TypedDict):
    """One chat message (the OpenAI chat-completions shape)."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Completion:
    """A provider's answer: the text, the model that produced it and the provider's name."""

    text: str
    model: str
    provider: str


@runtime_checkable
class LLMProvider(Protocol):
    """Anything that turns chat messages into a completion. ``name`` is shown in results."""

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Answer ``messages``; raise ``ProviderError`` when no answer can be had."""
        ...


@runtime_checkable
class StreamingProvider(LLMProvider, Protocol):
    """A provider that can also stream its answer (optional: see ``complete_with_tokens``)."""

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        on_token: TokenSink,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Like ``complete``, calling ``on_token`` with each chunk of text as it arrives; the
        completion's text is the chunks joined."""
        ...


async def complete_with_tokens(
    provider: LLMProvider,
    messages: Sequence[Message],
    *,
    model: str,
    temperature: float | None = None,
    timeout: float | None = None,
    on_token: TokenSink | None = None,
) -> Completion:
    """``provider``'s answer to ``messages``: streamed to ``on_token`` chunk by chunk when
    ``on_token`` is given and the provider streams (has ``stream``), else one ``complete`` call
    (no chunks). ``on_token`` is guarded: an error in it is logged, never raised into the
    provider."""
    stream = getattr(provider, "stream", None)
    if on_token is None or not callable(stream):
        return await provider.complete(
            messages, model=model, temperature=temperature, timeout=timeout
        )
    completion: Completion = await stream(
        messages,
        model=model,
        on_token=_guarded(on_token),
        temperature=temperature,
        timeout=timeout,
    )
    return completion


def _guarded(sink: TokenSink) -> TokenSink:
    def guarded(text: str) -> None:
        try:
            sink(text)
        except Exception:  # an observer never breaks a step
            log.warning("token chunk dropped", exc_info=True)

    return guarded


def prompt_text(messages: Sequence[Message]) -> str:
    """The last user message (what rule-based providers read)."""
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""
