"""LLM providers: the protocol (and the optional streaming one), the offline rule-based
provider, scripted and OpenAI ones."""

from orchestration.providers.base import (
    Completion,
    LLMProvider,
    Message,
    StreamingProvider,
    TokenSink,
    complete_with_tokens,
    prompt_text,
)
from orchestration.providers.offline import OfflineProvider
from orchestration.providers.openai_provider import OpenAIProvider
from orchestration.providers.scripted import ScriptedCall, ScriptedProvider

__all__ = [
    "Completion",
    "LLMProvider",
    "Message",
    "OfflineProvider",
    "OpenAIProvider",
    "ScriptedCall",
    "ScriptedProvider",
    "StreamingProvider",
    "TokenSink",
    "complete_with_tokens",
    "prompt_text",
]
