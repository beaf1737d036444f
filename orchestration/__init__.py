"""Flowloom orchestration: the graph model, routing/join rules and the local engine."""

from orchestration.conditions import Condition, compile_condition, evaluate
from orchestration.context import NodeContext, NodeType, Services, current_node_id
from orchestration.engine import Engine, ExecutionHandle
from orchestration.errors import (
    BlueprintValidationError,
    ConditionError,
    NonRetryableError,
    NotJSONSerializable,
    OrchestrationError,
    Problem,
    ProviderError,
    StepTimeout,
    SubflowFailed,
    UnknownNodeType,
    UnknownWorkflow,
    UnroutableAction,
)
from orchestration.graph import Edge, Graph, JoinPolicy, Node, RetryPolicy
from orchestration.jsonvalue import JSON
from orchestration.providers import Completion, LLMProvider, Message, OfflineProvider
from orchestration.registry import NodeTypeRegistry
from orchestration.results import ExecutionResult, StepRecord
from orchestration.routing import JoinDecision, NodeResult, Routing, join_decision, route
from orchestration.state import apply_updates, final_outputs, render_template
from orchestration.subflow import ChildOutcome
from orchestration.validation import graph_problems

__all__ = [
    "JSON",
    "BlueprintValidationError",
    "ChildOutcome",
    "Completion",
    "Condition",
    "ConditionError",
    "Edge",
    "Engine",
    "ExecutionHandle",
    "ExecutionResult",
    "Graph",
    "JoinDecision",
    "JoinPolicy",
    "LLMProvider",
    "Message",
    "Node",
    "NodeContext",
    "NodeResult",
    "NodeType",
    "NodeTypeRegistry",
    "NonRetryableError",
    "NotJSONSerializable",
    "OfflineProvider",
    "OrchestrationError",
    "Problem",
    "ProviderError",
    "RetryPolicy",
    "Routing",
    "Services",
    "StepRecord",
    "StepTimeout",
    "SubflowFailed",
    "UnknownNodeType",
    "UnknownWorkflow",
    "UnroutableAction",
    "apply_updates",
    "compile_condition",
    "current_node_id",
    "evaluate",
    "final_outputs",
    "graph_problems",
    "join_decision",
    "render_template",
    "route",
]
