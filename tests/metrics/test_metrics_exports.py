"""The public API of ``metrics`` is explicit and pinned; ``metrics`` imports nothing of ours."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import metrics
import metrics.errors

PACKAGE = Path(metrics.__file__).parent
OURS = {"store", "mq", "orchestration", "distributed"}


def test_the_public_names_of_metrics_are_pinned() -> None:
    assert metrics.__all__ == [
        "DEFAULT_PORT",
        "METRICS",
        "InvalidLabels",
        "Labels",
        "MetricSpec",
        "MetricsCollector",
        "MetricsConflict",
        "MetricsError",
        "MetricsServer",
        "MetricsServerError",
        "PrometheusCollector",
        "UnknownMetric",
        "serve_metrics",
    ]
    for name in metrics.__all__:
        assert hasattr(metrics, name)


def own_docstring(member: object) -> str:
    """The docstring the member itself declares (not an inherited or dataclass-made one)."""
    doc = vars(member).get("__doc__") if inspect.isclass(member) else inspect.getdoc(member)
    name = getattr(member, "__name__", "")
    return "" if not doc or doc.startswith(f"{name}(") else doc


def test_every_exported_class_and_function_has_its_own_docstring() -> None:
    members = [getattr(metrics, name) for name in metrics.__all__]
    documented = [m for m in members if inspect.isclass(m) or inspect.isfunction(m)]
    assert [m.__name__ for m in documented if not own_docstring(m)] == []


def test_every_error_of_the_package_is_exported_in_the_tree_and_drawn_in_the_docstring() -> None:
    errors = [
        member
        for member in vars(metrics.errors).values()
        if inspect.isclass(member) and issubclass(member, Exception)
        if member.__module__ == "metrics.errors"
    ]
    assert len(errors) == 5
    tree = metrics.errors.__doc__ or ""
    for error in errors:
        assert issubclass(error, metrics.MetricsError), error
        assert error.__name__ in metrics.__all__, error
        assert error.__name__ in tree, f"{error.__name__} is not drawn in the error tree"


def test_metrics_imports_nothing_of_ours() -> None:
    imported: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & OURS == set()


def test_only_the_instrumented_module_of_the_engine_imports_metrics() -> None:
    """The engine, workers and recovery know nothing of metrics; the CLI, at the top of the
    stack, builds the collector and the server it hands to ``InstrumentedEngine``."""
    root = PACKAGE.parent
    importers = sorted(
        str(path.relative_to(root))
        for package in OURS
        for path in (root / package).rglob("*.py")
        if "import metrics" in path.read_text() or "from metrics" in path.read_text()
        if not path.is_relative_to(root / "distributed" / "cli")
    )
    assert importers == ["distributed/instrumented.py"]
