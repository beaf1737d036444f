"""LLM providers: the protocol, the offline rule-based provider, scripted and OpenAI ones."""

from orchestration.providers.base import Completion, LLMProvider, Message, prompt_text
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
    "prompt_text",
]
