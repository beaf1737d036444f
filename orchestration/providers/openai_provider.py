"""``OpenAIProvider``: chat completions through the official ``openai`` client.

Honours ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (so any OpenAI-compatible server works).
Rate limits (429) and server errors (5xx) are retried by the client itself
(``max_retries``, with its backoff); what still fails becomes a ``ProviderError``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import openai

from orchestration.errors import ProviderError
from orchestration.providers.base import Completion, Message

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
        return openai.AsyncOpenAI(
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
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        if timeout is not None:
            options["timeout"] = timeout
        try:
            response = await self._client.chat.completions.create(
                model=model, messages=[dict(m) for m in messages], **options
            )
        except openai.OpenAIError as exc:
            raise ProviderError(f"OpenAI request failed: {type(exc).__name__}: {exc}") from exc
        if not response.choices:
            raise ProviderError("OpenAI response has no choices")
        text = response.choices[0].message.content or ""
        return Completion(text=text, model=str(response.model or model), provider=self.name)
