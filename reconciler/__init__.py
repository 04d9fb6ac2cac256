"""reconciler: maintenance automation as state-machine workflows in git, driven to convergence.

Public names are re-exported here; everything else may change between releases.
"""

from __future__ import annotations

__version__ = "0.1.0"

from reconciler.config.models import Action, State, Transition, Workflow
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
from reconciler.types import RetryPolicy

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
    "EnvNotAllowed",
    "EvaluationError",
    "ExpressionBudgetExceeded",
    "ExpressionError",
    "Grants",
    "HTTP4xx",
    "HTTP5xx",
    "HTTPError",
    "InvalidRequest",
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
    "SecretUnavailable",
    "ShellValueRefused",
    "State",
    "SubscribePlugin",
    "Timeout",
    "TooManyFailures",
    "Transition",
    "Workflow",
    "__version__",
]
