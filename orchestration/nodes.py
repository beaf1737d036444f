"""Built-in node types: ``llm-process``, ``llm-condition``, ``llm-router``, ``output``,
``subflow``, ``wait`` and ``loop``.

Every LLM node renders ``params["promptTemplate"]`` (see ``state.render_template``) and sends
it as the user message (``params["system"]`` as the system message, ``params["model"]`` and
``params["temperature"]`` when given). Where someone listens for tokens (the distributed event
log) and the provider streams, the reply is streamed as ``step.token`` events while it arrives;
``params["streamTokens"]: false`` turns that off for the node (the reply is the same). A node
type may offer ``validate(node) -> list[str]`` to report parameter problems at registration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestration.context import STREAM_TOKENS, NodeContext, Services
from orchestration.errors import OrchestrationError
from orchestration.graph import Node
from orchestration.loops import LOOP, LoopSpec
from orchestration.providers.base import Message, complete_with_tokens
from orchestration.registry import NodeTypeRegistry
from orchestration.routing import NodeResult
from orchestration.state import DEFAULT_OUTPUT_KEY, output_key, render_template, resolve_inputs
from orchestration.waits import WAIT, WaitSpec

__all__ = [
    "LLMConditionNode",
    "LLMProcessNode",
    "LLMRouterNode",
    "OutputNode",
    "SubflowNode",
    "builtin_registry",
    "parse_bool",
]


def _mapping_problems(params: Mapping[str, Any], key: str, *, lists: bool) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"params.{key} must be an object"]
    problems = []
    for name, source in value.items():
        ok = isinstance(source, str) or (
            lists and isinstance(source, list) and all(isinstance(s, str) for s in source)
        )
        if not ok:
            problems.append(f"params.{key}.{name} must name a node or state key")
    return problems


def _template_problems(node: Node, *, required: bool) -> list[str]:
    template = node.params.get("promptTemplate")
    problems = _mapping_problems(node.params, "inputs", lists=True)
    if template is None and required:
        problems.append("params.promptTemplate is required")
    elif template is not None and not isinstance(template, str):
        problems.append("params.promptTemplate must be a string")
    if not isinstance(node.params.get(STREAM_TOKENS, True), bool):
        problems.append(f"params.{STREAM_TOKENS} must be true or false")
    return problems


async def ask(node: Node, ctx: NodeContext, services: Services) -> str:
    """Render the node's prompt, call the provider (streaming to the attempt's token sink, if
    any), return the stripped reply."""
    prompt = render_template(
        str(node.params.get("promptTemplate", "")), node.params, ctx.state, ctx.outputs
    )
    messages: list[Message] = []
    system = node.params.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    model = node.params.get("model")
    temperature = node.params.get("temperature")
    completion = await complete_with_tokens(
        services.provider,
        messages,
        model=model if isinstance(model, str) else services.default_model,
        temperature=float(temperature) if isinstance(temperature, int | float) else None,
        timeout=services.llm_timeout,
        on_token=ctx.token_sink(),
    )
    return completion.text.strip()


def parse_bool(reply: str) -> bool:
    """Read an LLM's yes/no reply: true for ``true``/``yes`` (any case, quotes ignored)."""
    word = reply.strip().strip("'\"`*.").strip().lower()
    return word.startswith(("true", "yes"))


def parse_action(reply: str) -> str:
    """An LLM router's reply as an action: trimmed of whitespace, quotes and a final dot."""
    return reply.strip().strip("'\"`*").rstrip(".").strip()


class LLMProcessNode:
    """Output = the model's reply to the rendered prompt."""

    def validate(self, node: Node) -> list[str]:
        return _template_problems(node, required=True)

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        return NodeResult(output=await ask(node, ctx, services))


class LLMConditionNode(LLMProcessNode):
    """Output = the reply read as a boolean; action = ``"true"`` or ``"false"``."""

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        verdict = parse_bool(await ask(node, ctx, services))
        return NodeResult(output=verdict, action="true" if verdict else "false")


class LLMRouterNode(LLMProcessNode):
    """Output and action = the reply, trimmed."""

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        action = parse_action(await ask(node, ctx, services))
        return NodeResult(output=action, action=action)


class OutputNode:
    """Renders ``promptTemplate`` (or passes its single input through) into state.

    The result is written to ``params["outputKey"]`` (default ``final_output``).
    """

    def validate(self, node: Node) -> list[str]:
        return _template_problems(node, required=False)

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        template = node.params.get("promptTemplate")
        if isinstance(template, str):
            value: Any = render_template(template, node.params, ctx.state, ctx.outputs)
        else:
            inputs = resolve_inputs(node.params, ctx.state, ctx.outputs)
            value = next(iter(inputs.values())) if len(inputs) == 1 else inputs
        key = output_key(node.params) or DEFAULT_OUTPUT_KEY
        return NodeResult(output=value, state_updates={key: value})


class SubflowNode:
    """Marker type: the engine runs subflow nodes as child executions, not through ``run``."""

    def validate(self, node: Node) -> list[str]:
        problems = _mapping_problems(node.params, "inputs", lists=True)
        problems += _mapping_problems(node.params, "outputs", lists=False)
        if not isinstance(node.params.get("blueprintId"), str):
            problems.append("params.blueprintId must name a blueprint")
        return problems

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        raise OrchestrationError(
            f"subflow node {node.id!r} runs as a child execution, not through run_node"
        )


class LoopNode:
    """Marker type: the engine runs a loop's iterations as child executions."""

    def validate(self, node: Node) -> list[str]:
        problems = _mapping_problems(node.params, "inputs", lists=True)
        problems += _mapping_problems(node.params, "outputs", lists=False)
        return problems + LoopSpec.problems(node)

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        raise OrchestrationError(f"loop node {node.id!r} runs child executions, not run_node")


class WaitNode:
    """Marker type: the engine parks wait nodes until a signal (see ``orchestration.waits``)."""

    def validate(self, node: Node) -> list[str]:
        if not isinstance(node.params.get("event"), str):
            return ["params.event must name the event to wait for"]
        problems = WaitSpec.of(node).problems()
        timeout = node.params.get("timeout")
        if timeout is not None and not isinstance(timeout, int | float):
            problems.append("params.timeout must be a number of milliseconds")
        return problems

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        raise OrchestrationError(f"wait node {node.id!r} is run by the engine, not run_node")


def builtin_registry() -> NodeTypeRegistry:
    """A registry holding the built-in node types."""
    registry = NodeTypeRegistry()
    registry.register("llm-process", LLMProcessNode())
    registry.register("llm-condition", LLMConditionNode())
    registry.register("llm-router", LLMRouterNode())
    registry.register("output", OutputNode())
    registry.register("subflow", SubflowNode())
    registry.register(WAIT, WaitNode())
    registry.register(LOOP, LoopNode())
    return registry
