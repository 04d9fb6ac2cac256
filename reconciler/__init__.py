"""reconciler: maintenance automation as state-machine workflows in git, driven to convergence.

The public API is the names re-exported here (``__all__``): the workflow models and the builder
to write them in Python, the loader, the testing harness, the diagram renderers, the plugin
contract and the error tree. Import them from ``reconciler``; the modules they live in, and
everything else, may change between releases.
"""

from __future__ import annotations

from reconciler.config.builder import (
    WorkflowBuilder,
    action,
    after,
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
    TestOutcome,
    arun_workflow,
    mock_registry,
    run_inline_test,
    run_workflow,
)
from reconciler.types import Duration, RetryPolicy
from reconciler.version import __version__

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
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
