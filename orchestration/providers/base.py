"""The ``LLMProvider`` protocol and the values it exchanges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, runtime_checkable

__all__ = ["Completion", "LLMProvider", "Message", "prompt_text"]


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


def prompt_text(messages: Sequence[Message]) -> str:
    """The last user message (what rule-based providers read)."""
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""
