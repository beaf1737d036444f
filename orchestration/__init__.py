"""Flowloom orchestration: the graph model, routing/join rules and the local engine.

Both engines share this package: code workflows and JSON blueprints compile to one graph
model (``graph``); ``routing`` and ``state`` hold the pure rules (routing, joins, state,
final outputs); ``Engine.run_node`` runs one attempt of one node; ``Engine.execute`` runs a
whole graph in memory; ``retry_with_policy`` runs any callable under a ``RetryPolicy``
(tenacity underneath), with the same delays the distributed worker uses.
"""

from orchestration.agents import Agent
from orchestration.blueprint import Blueprint, BlueprintEdge, BlueprintNode, NodeConfig
from orchestration.conditions import Condition, compile_condition, evaluate
from orchestration.context import (
    NodeContext,
    NodeType,
    Services,
    current_context,
    current_node_id,
)
from orchestration.engine import Engine, ExecutionHandle
from orchestration.errors import (
    BlueprintValidationError,
    ConditionError,
    NonRetryableError,
    NotJSONSerializable,
    OrchestrationError,
    Problem,
    ProviderError,
    SignalRefused,
    StepTimeout,
    SubflowFailed,
    UnknownNodeType,
    UnknownWorkflow,
    UnroutableAction,
    WaitTimedOut,
)
from orchestration.formatting import format_result
from orchestration.graph import Edge, Graph, JoinPolicy, Node, RetryPolicy
from orchestration.jsonvalue import JSON
from orchestration.loops import LoopSpec
from orchestration.nodes import builtin_registry
from orchestration.providers import (
    Completion,
    LLMProvider,
    Message,
    OfflineProvider,
    OpenAIProvider,
    ScriptedProvider,
)
from orchestration.registry import NodeTypeRegistry
from orchestration.results import ExecutionResult, StepRecord
from orchestration.retry import default_retry_policy, retry_with_policy, retry_with_policy_sync
from orchestration.routing import JoinDecision, NodeResult, Routing, join_decision, route
from orchestration.state import (
    DEFAULT_OUTPUT_KEY,
    apply_updates,
    final_outputs,
    render_template,
    resolve_inputs,
)
from orchestration.steps import (
    ConditionalStep,
    FunctionStep,
    LoopStep,
    ParallelStep,
    SequentialStep,
    Step,
    StepInput,
    WaitStep,
)
from orchestration.subflow import ChildOutcome
from orchestration.validation import graph_problems
from orchestration.waits import Signal, SignalBox, WaitSpec
from orchestration.workflow import CompiledWorkflow, Workflow

__all__ = [
    "DEFAULT_OUTPUT_KEY",
    "JSON",
    "Agent",
    "Blueprint",
    "BlueprintEdge",
    "BlueprintNode",
    "BlueprintValidationError",
    "ChildOutcome",
    "CompiledWorkflow",
    "Completion",
    "Condition",
    "ConditionError",
    "ConditionalStep",
    "Edge",
    "Engine",
    "ExecutionHandle",
    "ExecutionResult",
    "FunctionStep",
    "Graph",
    "JoinDecision",
    "JoinPolicy",
    "LLMProvider",
    "LoopSpec",
    "LoopStep",
    "Message",
    "Node",
    "NodeConfig",
    "NodeContext",
    "NodeResult",
    "NodeType",
    "NodeTypeRegistry",
    "NonRetryableError",
    "NotJSONSerializable",
    "OfflineProvider",
    "OpenAIProvider",
    "OrchestrationError",
    "ParallelStep",
    "Problem",
    "ProviderError",
    "RetryPolicy",
    "Routing",
    "ScriptedProvider",
    "SequentialStep",
    "Services",
    "Signal",
    "SignalBox",
    "SignalRefused",
    "Step",
    "StepInput",
    "StepRecord",
    "StepTimeout",
    "SubflowFailed",
    "UnknownNodeType",
    "UnknownWorkflow",
    "UnroutableAction",
    "WaitSpec",
    "WaitStep",
    "WaitTimedOut",
    "Workflow",
    "apply_updates",
    "builtin_registry",
    "compile_condition",
    "current_context",
    "current_node_id",
    "default_retry_policy",
    "evaluate",
    "final_outputs",
    "format_result",
    "graph_problems",
    "join_decision",
    "render_template",
    "resolve_inputs",
    "retry_with_policy",
    "retry_with_policy_sync",
    "route",
]
