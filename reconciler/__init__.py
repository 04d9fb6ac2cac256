"""reconciler: maintenance automation as state-machine workflows in git, driven to convergence.

Public names are re-exported here; everything else may change between releases.
"""

from __future__ import annotations

__version__ = "0.1.0"

from reconciler.config.models import Action, RetryPolicy, State, Transition, Workflow
from reconciler.errors import (
    ActionError,
    Cancelled,
    CheckFailed,
    ChildRunFailed,
    CommandFailed,
    ConfigError,
    Conflict,
    ConnectionFailed,
    EvaluationError,
    ExpressionError,
    HTTP4xx,
    HTTP5xx,
    HTTPError,
    InvalidRequest,
    NotFound,
    PluginError,
    PluginNotFound,
    ReconcilerError,
    SecretUnavailable,
    Timeout,
    TooManyFailures,
)
from reconciler.plugin import (
    ActionContext,
    Plugin,
    PluginRegistry,
    Request,
    Response,
    RunInfo,
    SubscribePlugin,
)

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
    "EvaluationError",
    "ExpressionError",
    "HTTP4xx",
    "HTTP5xx",
    "HTTPError",
    "InvalidRequest",
    "NotFound",
    "Plugin",
    "PluginError",
    "PluginNotFound",
    "PluginRegistry",
    "ReconcilerError",
    "Request",
    "Response",
    "RetryPolicy",
    "RunInfo",
    "SecretUnavailable",
    "State",
    "SubscribePlugin",
    "Timeout",
    "TooManyFailures",
    "Transition",
    "Workflow",
    "__version__",
]
