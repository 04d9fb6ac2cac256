"""Every error reconciler raises, in one tree.

The names below are what workflow authors write in a transition's ``on:`` list, so they are a
public contract: renaming one breaks users' workflows.

    ReconcilerError                 base of everything below
    ├── ConfigError                 a workflow file or setting is wrong (path:line:col known)
    │   └── ExpressionError         a CEL expression does not compile
    ├── PluginNotFound              no plugin is registered under a name
    ├── StoreError                  the durable store (``reconciler/store``) failed
    │   ├── StoreUnavailable        the database cannot be reached or opened (names host, never password)
    │   └── LeaseLost               a fenced write came from a lease that is no longer current
    ├── InputRejected               a run-time input the workflow's ``spec.parameters`` refuse
    ├── SourceError                 the git repository or directory holding workflows failed
    │   ├── FetchFailed             a fetch/read failed (names the repo, masked, and branch)
    │   │   └── SignatureRefused    the fetched head commit is not signed by an allowed key
    │   └── CredentialsUnavailable  git's credentials (a GitHub App's token) could not be had
    ├── NotificationError           a notification could not go out (never stops a run)
    │   ├── NotificationRefused     the operator's policy refuses the provider's type or host
    │   └── DeliveryFailed          the provider answered with an error, or could not be reached
    └── ActionError                 something failed during a run; routed by ``on:``
        ├── Timeout                 a state, action or run deadline passed      (retryable)
        ├── Cancelled               the run or the action was cancelled
        ├── InvalidRequest          a rendered request fails the plugin's model
        ├── EvaluationError         a CEL expression failed at run time
        │   └── ExpressionBudgetExceeded  an expression cost more than the operator allows
        ├── NotAllowed              a workflow asked for what the operator did not grant
        │   ├── PathNotAllowed      a path outside the file roots, or a special file
        │   ├── EnvNotAllowed       an environment variable outside --allow-env
        │   ├── ShellValueRefused   a ``${{ }}`` value cannot be pasted safely into a shell
        │   └── SecretExpressionRefused  a ``${{ }}`` computes with a secret
        ├── SecretUnavailable       a secret reference could not be resolved     (retryable)
        ├── CheckFailed             a pre/during/post check did not pass
        ├── ChildRunFailed          a ``workflow.run`` child ended in failure
        ├── ApprovalRejected        a person rejected the run at an ``approval`` gate
        ├── ApprovalUnavailable     nobody can approve here (a one-shot command, no daemon)
        ├── TooManyFailures         more ``foreach`` items failed than ``tolerate`` allows
        └── PluginError             base for a plugin's own named errors
            ├── Conflict            the target exists in another shape
            ├── NotFound            the target does not exist
            ├── ConnectionFailed    the server could not be reached              (retryable)
            ├── CommandFailed       a command exited non-zero
            └── HTTPError           an HTTP status the caller did not accept
                ├── HTTP4xx
                └── HTTP5xx                                                      (retryable)

In ``on:`` an error matches its own name and the name of every ancestor up to ``ActionError``,
so ``on: [HTTPError]`` catches ``HTTP5xx`` and ``on: [PluginError]`` catches every plugin error.
The keyword ``error`` matches any error and ``success`` matches a state that raised none.
Plugins define their own errors by subclassing :class:`PluginError` (or any leaf) and setting
``retryable``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ReconcilerError(Exception):
    """Base of every error reconciler raises on purpose."""


class ConfigError(ReconcilerError):
    """A problem in a workflow file, reported as ``path:line:col: message``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.path, self.line, self.column) if p is not None)
        return f"{where}: {self.message}" if where else self.message


class ExpressionError(ConfigError):
    """A CEL expression that does not compile."""


class PluginNotFound(ReconcilerError):
    """No plugin is registered under the requested name."""


class StoreError(ReconcilerError):
    """The durable store failed. Not an ``ActionError``: workflows cannot route on it."""


class StoreUnavailable(StoreError):
    """The store's database cannot be reached or opened. The message names the host (or file),
    never a password."""


class LeaseLost(StoreError):
    """A write fenced by a lease was refused because another owner has since acquired it."""


class RunLeftUnfinished(ReconcilerError):
    """A journal's ``run_finished`` kept a cancelled run unfinished instead of ending it: the
    daemon is shutting down and the run resumes in its state on the next start. The engine
    catches it and does not report the run as finished. Not an ``ActionError``."""


class InputRejected(ReconcilerError):
    """An input given for one run (``POST /api/v1/workflows/NAME/runs``, ``reconciler sync
    --input``) that the workflow's ``spec.parameters`` do not accept. :attr:`code` says why —
    ``unknown_input`` (no such parameter), ``input_not_settable`` (declared ``settable:
    false``) or ``invalid_input`` (wrong type, or not one of its ``enum``) — and :attr:`input`
    names the input (``inputs_too_large``: all of them over 64 KiB as JSON, naming the largest;
    ``too_many_waiting_runs``: the workflow's backlog of runs with inputs is full, no input);
    the message names both and what was expected. Raised before anything is
    recorded, so a refused request leaves no trace. Not an ``ActionError``."""

    def __init__(self, message: str, *, code: str, input: str) -> None:
        super().__init__(message)
        self.code = code
        self.input = input


class SourceError(ReconcilerError):
    """The source of workflow files (``reconciler/sources``) failed. Not an ``ActionError``."""


class FetchFailed(SourceError):
    """Fetching or reading a revision failed. The message names the repository (credentials
    masked), branch and sub-path; the last good revision stays in use."""


class CredentialsUnavailable(SourceError):
    """git's credentials could not be obtained: a GitHub App's installation token could not be
    minted (key unreadable, API unreachable or refusing). The message names the app, the
    installation and the file or API at fault, never a key or a token."""


class PreviewUnavailable(SourceError):
    """A preview cannot be made here: the daemon follows a directory, not a git repository,
    or another preview is still running (the API answers 409)."""


class RefNotFound(FetchFailed):
    """A preview asked for a branch, tag or commit the repository does not have (or a ref
    that is not a plain git name). Nothing was loaded; the API answers 404."""


class SignatureRefused(FetchFailed):
    """With ``--verify-signatures``, the head commit of a fetched revision is unsigned or not
    signed by an allowed key (``--allowed-signers``, ``--gpg-home``). The revision is not
    applied: the last good (verified) revision stays in use, as after any failed fetch. The
    message names the commit and git's reason."""


class NotificationError(ReconcilerError):
    """A notification could not go out (``reconciler/notify``). Logged with the provider's
    name, never the URL; it never fails a run. Not an ``ActionError``."""


class NotificationRefused(NotificationError):
    """The operator's policy (``--notify-provider-types``, ``--notify-hosts``) does not allow a
    provider's type or the host it sends to; nothing is sent to it."""


class DeliveryFailed(NotificationError):
    """A provider answered with an error status, or could not be reached, after the retries
    its answer allowed. The message names the provider and the HTTP status."""


class ActionError(ReconcilerError):
    """A failure during a run. Its :attr:`name` is what ``on:`` matches.

    ``retryable`` tells the engine whether repeating the same action may help; a state's retry
    policy stops early on the first non-retryable error. ``details`` is a JSON-able mapping kept
    in the journal, so it must never hold a secret value (the journal redacts known secrets, but
    plugins should not rely on that).
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if retryable is not None:
            self.retryable = retryable  # type: ignore[misc]

    @property
    def name(self) -> str:
        """The name users write in ``on:``."""
        return type(self).__name__

    def names(self) -> list[str]:
        """This error's name and its ancestors' names, most specific first."""
        out: list[str] = []
        for cls in type(self).__mro__:
            if not (isinstance(cls, type) and issubclass(cls, ActionError)):
                continue
            out.append(cls.__name__)
            if cls is ActionError:
                break
        return out

    def matches(self, name: str) -> bool:
        """Whether ``on: [name]`` catches this error."""
        return name == "error" or name in self.names()

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


class Timeout(ActionError):
    retryable = True


class Cancelled(ActionError):
    retryable = False


class InvalidRequest(ActionError):
    retryable = False


class EvaluationError(ActionError):
    retryable = False


class ExpressionBudgetExceeded(EvaluationError):
    """An expression's cost went over the operator's budget (``--expression-cost-limit``)."""

    retryable = False


class NotAllowed(ActionError):
    """A workflow asked for something the operator did not grant (see ``docs/security.md``).

    Also reported by ``validate`` as ``path:line:col`` when the value is a literal.
    """

    retryable = False


class PathNotAllowed(NotAllowed):
    """A path outside the file roots, under a denied directory, a symlink leaving a root, a
    special file (FIFO, device, socket) or a file over the read limit."""


class EnvNotAllowed(NotAllowed):
    """An ``env:`` reference to a variable the operator did not allow (``--allow-env``)."""


class ShellValueRefused(NotAllowed):
    """A ``${{ }}`` value in a ``shell: true`` command that cannot be used safely."""


class SecretExpressionRefused(NotAllowed):
    """A ``${{ }}`` that computes with a secret (``size(secrets.x)``, ``secrets.x.matches(..)``)
    instead of passing it as is: its result could carry the secret past redaction."""


class SecretUnavailable(ActionError):
    retryable = True


class CheckFailed(ActionError):
    retryable = False


class ChildRunFailed(ActionError):
    retryable = False


class TooManyFailures(ActionError):
    retryable = False


class ApprovalRejected(ActionError):
    """Someone rejected the run at an ``approval`` gate. ``details`` holds who (the API token's
    name) and their comment; route it with ``on: [ApprovalRejected]`` like any other outcome."""

    retryable = False


class ApprovalUnavailable(ActionError):
    """A run reached an ``approval`` gate where nobody can decide: a one-shot ``reconciler
    apply``, or an engine built without an approval desk. Only the daemon takes approvals."""

    retryable = False


class PluginError(ActionError):
    retryable = False


class Conflict(PluginError):
    retryable = False


class NotFound(PluginError):
    retryable = False


class ConnectionFailed(PluginError):
    retryable = True


class CommandFailed(PluginError):
    retryable = False


class HTTPError(PluginError):
    retryable = False


class HTTP4xx(HTTPError):
    retryable = False


class HTTP5xx(HTTPError):
    retryable = True


BUILTIN_ERROR_NAMES: frozenset[str] = frozenset(
    {"error", "success"}
    | {
        cls.__name__
        for cls in (
            ActionError,
            Timeout,
            Cancelled,
            InvalidRequest,
            EvaluationError,
            ExpressionBudgetExceeded,
            NotAllowed,
            PathNotAllowed,
            EnvNotAllowed,
            ShellValueRefused,
            SecretExpressionRefused,
            SecretUnavailable,
            CheckFailed,
            ChildRunFailed,
            TooManyFailures,
            ApprovalRejected,
            ApprovalUnavailable,
            PluginError,
            Conflict,
            NotFound,
            ConnectionFailed,
            CommandFailed,
            HTTPError,
            HTTP4xx,
            HTTP5xx,
        )
    }
)
"""Names valid in ``on:`` whatever plugins are installed (plugins add their own)."""
