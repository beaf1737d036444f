"""LLM providers: the protocol, the offline rule-based provider, scripted and OpenAI ones."""

from orchestration.providers.base import Completion, LLMProvider, Message, prompt_text
from orchestration.providers.offline import OfflineProvider

__all__ = ["Completion", "LLMProvider", "Message", "OfflineProvider", "prompt_text"]
