"""``OpenAIProvider``: chat completions through the official ``openai`` client.

Honours ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (so any OpenAI-compatible server works).
Rate limits (429) and server errors (5xx) are retried by the client itself
(``max_retries``, with its backoff); what still fails becomes a ``ProviderError``.

``stream`` asks for the answer with ``stream=True`` (server-sent events) and hands each text
delta to ``on_token`` as it arrives, returning the whole text as the completion. A stream that
breaks off midway (the connection drops, the server sends an error event, a read times out)
is a ``ProviderError`` too: the chunks already handed over stay with the attempt that failed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from orchestration.errors import ProviderError
from orchestration.providers.base import Completion, Message, TokenSink

__all__ = ["OpenAIProvider"]


class OpenAIProvider:
    """An ``LLMProvider`` on ``openai.AsyncOpenAI``. ``timeout`` is per request, in seconds."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: Any | None = None,
    ) -> None:
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self._client = client or self._make_client(api_key, timeout, max_retries)

    def _make_client(self, api_key: str | None, timeout: float, max_retries: int) -> Any:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ProviderError("OpenAIProvider needs an API key: set OPENAI_API_KEY")
        return _openai().AsyncOpenAI(
            api_key=key, base_url=self.base_url, timeout=timeout, max_retries=max_retries
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion; raises ``ProviderError`` once the client gives up."""
        options = _options(temperature, timeout)
        try:
            response = await self._client.chat.completions.create(
                model=model, messages=[dict(m) for m in messages], **options
            )
        except _openai().OpenAIError as exc:
            raise ProviderError(f"OpenAI request failed: {type(exc).__name__}: {exc}") from exc
        if not response.choices:
            raise ProviderError("OpenAI response has no choices")
        text = response.choices[0].message.content or ""
        return Completion(text=text, model=str(response.model or model), provider=self.name)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        on_token: TokenSink,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """One streamed chat completion (``stream=True``): ``on_token`` gets each text delta
        as it arrives; the completion holds them joined. Raises ``ProviderError`` once the
        client gives up, or when the stream breaks off."""
        options = _options(temperature, timeout)
        parts: list[str] = []
        served, choices = model, False
        try:
            stream = await self._client.chat.completions.create(
                model=model, messages=[dict(m) for m in messages], stream=True, **options
            )
            async with stream:
                async for chunk in stream:
                    served = chunk.model or served
                    for choice in chunk.choices:
                        choices = True
                        delta = getattr(choice, "delta", None)  # lenient: compatible servers
                        text = getattr(delta, "content", None) if choice.index == 0 else None
                        if text:
                            parts.append(text)
                            on_token(text)
        except _openai().OpenAIError as exc:
            raise ProviderError(f"OpenAI stream failed: {type(exc).__name__}: {exc}") from exc
        if not choices:
            raise ProviderError("OpenAI stream has no choices")
        return Completion(text="".join(parts), model=str(served), provider=self.name)


def _openai() -> ModuleType:
    """The ``openai`` package, imported on first use: importing it takes about a second and
    30 MiB, which every process that imports Flowloom (each CLI command, each worker) would
    otherwise pay whether or not it ever calls OpenAI."""
    import openai

    return openai


def _options(temperature: float | None, timeout: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if temperature is not None:
        options["temperature"] = temperature
    if timeout is not None:
        options["timeout"] = timeout
    return options
