"""``ScriptedProvider``: canned answers per node id or per prompt substring, for tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

from orchestration.context import current_node_id
from orchestration.errors import ProviderError
from orchestration.providers.base import Completion, LLMProvider, Message, prompt_text

__all__ = ["Answer", "ScriptedCall", "ScriptedProvider"]

Answer = Union[str, Sequence[str], Callable[[str], str], BaseException]  # noqa: UP007
"""A text; a list of texts (one per call, the last repeats); a function of the prompt; or an
exception to raise."""


@dataclass(frozen=True)
class ScriptedCall:
    """One call the provider received."""

    node_id: str | None
    prompt: str
    model: str


class ScriptedProvider:
    """Answers by the id of the node calling (``by_node``), else by the first substring of
    ``by_prompt`` found in the prompt, else from ``fallback`` (a provider), else raises
    ``ProviderError``. Every call is recorded in ``calls``."""

    name = "scripted"

    def __init__(
        self,
        by_node: Mapping[str, Answer] | None = None,
        by_prompt: Mapping[str, Answer] | None = None,
        *,
        fallback: LLMProvider | None = None,
    ) -> None:
        self.by_node = dict(by_node or {})
        self.by_prompt = dict(by_prompt or {})
        self.fallback = fallback
        self.calls: list[ScriptedCall] = []
        self._counts: dict[str, int] = {}

    def calls_for(self, node_id: str) -> list[ScriptedCall]:
        """The calls made by node ``node_id``."""
        return [call for call in self.calls if call.node_id == node_id]

    def _pick(self, key: str, answer: Answer, prompt: str) -> str:
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, str):
            return answer
        if callable(answer):
            return answer(prompt)
        index = self._counts.get(key, 0)
        self._counts[key] = index + 1
        return answer[min(index, len(answer) - 1)]

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str = "scripted",
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """The scripted answer for the calling node or the prompt."""
        node_id, prompt = current_node_id.get(), prompt_text(messages)
        self.calls.append(ScriptedCall(node_id, prompt, model))
        if node_id is not None and node_id in self.by_node:
            return Completion(self._pick(node_id, self.by_node[node_id], prompt), model, self.name)
        for needle, answer in self.by_prompt.items():
            if needle in prompt:
                return Completion(self._pick(needle, answer, prompt), model, self.name)
        if self.fallback is not None:
            return await self.fallback.complete(
                messages, model=model, temperature=temperature, timeout=timeout
            )
        raise ProviderError(f"no scripted answer for node {node_id!r} and prompt {prompt[:80]!r}")
