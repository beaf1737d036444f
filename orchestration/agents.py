"""``Agent``: a named LLM persona with instructions, a model and an optional provider."""

from __future__ import annotations

from orchestration.context import current_token_sink
from orchestration.providers.base import LLMProvider, Message, complete_with_tokens
from orchestration.providers.offline import OfflineProvider

__all__ = ["Agent"]


class Agent:
    """An LLM agent: ``instructions`` go in the system message, the prompt in the user one.

    ``provider`` pins the agent to one provider; left ``None``, the agent uses the provider
    it is given at run time (the engine's), else the ``OfflineProvider``. Run inside a step
    whose tokens someone listens for (the distributed event log), the reply is streamed as
    ``step.token`` events when the provider streams; ``stream=False`` turns that off.
    """

    def __init__(
        self,
        name: str,
        instructions: str = "",
        *,
        model: str = "gpt-4o-mini",
        provider: LLMProvider | None = None,
        temperature: float | None = None,
        timeout: float | None = 60.0,
        stream: bool = True,
    ) -> None:
        self.name = name
        self.instructions = instructions
        self.model = model
        self.provider = provider
        self.temperature = temperature
        self.timeout = timeout
        self.stream = stream

    def messages(self, prompt: str) -> list[Message]:
        """The chat messages sent for ``prompt``."""
        messages: list[Message] = []
        if self.instructions:
            messages.append({"role": "system", "content": self.instructions})
        messages.append({"role": "user", "content": prompt})
        return messages

    async def run(self, prompt: str, *, provider: LLMProvider | None = None) -> str:
        """The agent's reply to ``prompt`` (whitespace-trimmed)."""
        chosen = self.provider or provider or OfflineProvider()
        completion = await complete_with_tokens(
            chosen,
            self.messages(prompt),
            model=self.model,
            temperature=self.temperature,
            timeout=self.timeout,
            on_token=current_token_sink() if self.stream else None,
        )
        return completion.text.strip()

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model!r})"
