"""reconciler: maintenance automation as state-machine workflows in git, driven to convergence.

The public API is the names re-exported here (``__all__``): the workflow models and the builder
to write them in Python, the loader, the testing harness, the diagram renderers, the plugin
contract and the error tree. Import them from ``reconciler``; the modules they live in, and
everything else, may change between releases.

The names are imported on first use (:func:`__getattr__`), so that ``import reconciler`` — and
every command line, which imports it first — costs only what is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.config.builder import (
        WorkflowBuilder,
        action,
        after,
        approval,
        default,
        foreach,
        mock_error,
        on,
        poll,
        retry,
        subscribe,
        when,
    )
    from reconciler.config.loader import load_text, load_tree
    from reconciler.config.models import Action, State, Transition, Workflow
    from reconciler.config.snapshot import LoadedWorkflow, Snapshot
    from reconciler.engine.graph import Diagram, build_diagram, to_dot, to_mermaid
    from reconciler.errors import (
        ActionError,
        ApprovalRejected,
        ApprovalUnavailable,
        Cancelled,
        CheckFailed,
        ChildRunFailed,
        CommandFailed,
        ConfigError,
        Conflict,
        ConnectionFailed,
        EnvNotAllowed,
        EvaluationError,
        ExpressionBudgetExceeded,
        ExpressionError,
        HTTP4xx,
        HTTP5xx,
        HTTPError,
        InvalidRequest,
        NotAllowed,
        NotFound,
        PathNotAllowed,
        PluginError,
        PluginNotFound,
        ReconcilerError,
        SecretExpressionRefused,
        SecretUnavailable,
        ShellValueRefused,
        Timeout,
        TooManyFailures,
    )
    from reconciler.grants import Grants
    from reconciler.plugin import (
        ActionContext,
        Plugin,
        PluginRegistry,
        Request,
        Response,
        RunInfo,
        SubscribePlugin,
    )
    from reconciler.testing import (
        ScriptedApprovals,
        TestOutcome,
        arun_workflow,
        mock_registry,
        run_inline_test,
        run_workflow,
    )
    from reconciler.types import Duration, RetryPolicy
    from reconciler.version import __version__

_HOMES: dict[str, str] = {
    "Action": "reconciler.config.models",
    "ActionContext": "reconciler.plugin",
    "ActionError": "reconciler.errors",
    "Cancelled": "reconciler.errors",
    "CheckFailed": "reconciler.errors",
    "ApprovalRejected": "reconciler.errors",
    "ApprovalUnavailable": "reconciler.errors",
    "ChildRunFailed": "reconciler.errors",
    "CommandFailed": "reconciler.errors",
    "ConfigError": "reconciler.errors",
    "Conflict": "reconciler.errors",
    "ConnectionFailed": "reconciler.errors",
    "Diagram": "reconciler.engine.graph",
    "Duration": "reconciler.types",
    "EnvNotAllowed": "reconciler.errors",
    "EvaluationError": "reconciler.errors",
    "ExpressionBudgetExceeded": "reconciler.errors",
    "ExpressionError": "reconciler.errors",
    "Grants": "reconciler.grants",
    "HTTP4xx": "reconciler.errors",
    "HTTP5xx": "reconciler.errors",
    "HTTPError": "reconciler.errors",
    "InvalidRequest": "reconciler.errors",
    "LoadedWorkflow": "reconciler.config.snapshot",
    "NotAllowed": "reconciler.errors",
    "NotFound": "reconciler.errors",
    "PathNotAllowed": "reconciler.errors",
    "Plugin": "reconciler.plugin",
    "PluginError": "reconciler.errors",
    "PluginNotFound": "reconciler.errors",
    "PluginRegistry": "reconciler.plugin",
    "ReconcilerError": "reconciler.errors",
    "Request": "reconciler.plugin",
    "Response": "reconciler.plugin",
    "RetryPolicy": "reconciler.types",
    "RunInfo": "reconciler.plugin",
    "SecretExpressionRefused": "reconciler.errors",
    "SecretUnavailable": "reconciler.errors",
    "ShellValueRefused": "reconciler.errors",
    "Snapshot": "reconciler.config.snapshot",
    "State": "reconciler.config.models",
    "SubscribePlugin": "reconciler.plugin",
    "TestOutcome": "reconciler.testing",
    "Timeout": "reconciler.errors",
    "TooManyFailures": "reconciler.errors",
    "Transition": "reconciler.config.models",
    "Workflow": "reconciler.config.models",
    "WorkflowBuilder": "reconciler.config.builder",
    "__version__": "reconciler.version",
    "action": "reconciler.config.builder",
    "after": "reconciler.config.builder",
    "approval": "reconciler.config.builder",
    "ScriptedApprovals": "reconciler.testing",
    "arun_workflow": "reconciler.testing",
    "build_diagram": "reconciler.engine.graph",
    "default": "reconciler.config.builder",
    "foreach": "reconciler.config.builder",
    "load_text": "reconciler.config.loader",
    "load_tree": "reconciler.config.loader",
    "mock_error": "reconciler.config.builder",
    "mock_registry": "reconciler.testing",
    "on": "reconciler.config.builder",
    "poll": "reconciler.config.builder",
    "retry": "reconciler.config.builder",
    "run_inline_test": "reconciler.testing",
    "run_workflow": "reconciler.testing",
    "subscribe": "reconciler.config.builder",
    "to_dot": "reconciler.engine.graph",
    "to_mermaid": "reconciler.engine.graph",
    "when": "reconciler.config.builder",
}
"""Each public name → the module it lives in (a test checks it against ``__all__``)."""

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ApprovalRejected",
    "ApprovalUnavailable",
    "Cancelled",
    "CheckFailed",
    "ChildRunFailed",
    "CommandFailed",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Diagram",
    "Duration",
    "EnvNotAllowed",
    "EvaluationError",
    "ExpressionBudgetExceeded",
    "ExpressionError",
    "Grants",
    "HTTP4xx",
    "HTTP5xx",
    "HTTPError",
    "InvalidRequest",
    "LoadedWorkflow",
    "NotAllowed",
    "NotFound",
    "PathNotAllowed",
    "Plugin",
    "PluginError",
    "PluginNotFound",
    "PluginRegistry",
    "ReconcilerError",
    "Request",
    "Response",
    "RetryPolicy",
    "RunInfo",
    "ScriptedApprovals",
    "SecretExpressionRefused",
    "SecretUnavailable",
    "ShellValueRefused",
    "Snapshot",
    "State",
    "SubscribePlugin",
    "TestOutcome",
    "Timeout",
    "TooManyFailures",
    "Transition",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "action",
    "after",
    "approval",
    "arun_workflow",
    "build_diagram",
    "default",
    "foreach",
    "load_text",
    "load_tree",
    "mock_error",
    "mock_registry",
    "on",
    "poll",
    "retry",
    "run_inline_test",
    "run_workflow",
    "subscribe",
    "to_dot",
    "to_mermaid",
    "when",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept here afterwards."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
