"""``NodeTypeRegistry``: node type names -> behaviour."""

from __future__ import annotations

from collections.abc import Iterator

from orchestration.context import NodeType
from orchestration.errors import UnknownNodeType

__all__ = ["NodeTypeRegistry"]


class NodeTypeRegistry:
    """Maps the ``type`` of nodes (``uses`` in blueprints) to ``NodeType`` instances."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}

    def register(self, name: str, node_type: NodeType) -> None:
        """Register ``node_type`` under ``name`` (replacing any previous one)."""
        self._types[name] = node_type

    def get(self, name: str) -> NodeType:
        """The node type registered as ``name``; raises ``UnknownNodeType``."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownNodeType(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def names(self) -> frozenset[str]:
        """Every registered name."""
        return frozenset(self._types)
