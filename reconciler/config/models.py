"""The workflow format as pydantic models: the single description of every input.

These models validate a parsed YAML document, document every field (the descriptions feed
``reconciler schema``) and produce the JSON Schema. Shorthands (``action``, ``next``,
``onError``, a transition's string ``on``) are accepted on input and normalised to one form, so
the engine, the validator and the graph only ever see ``do`` lists and ``transitions`` lists.

Nothing here reads files or evaluates expressions: :mod:`reconciler.config.loader` turns files
into these models, :mod:`reconciler.config.validate` checks what a single model cannot (state
references, plugins, CEL), and :mod:`reconciler.engine` runs them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from reconciler.config.parameters import PARAMETER_NAME_PATTERN, Parameter

# The value types live in the leaf module reconciler.types; re-exported for callers.
from reconciler.types import Duration as Duration
from reconciler.types import Model as Model
from reconciler.types import RetryPolicy as RetryPolicy
from reconciler.types import format_duration as format_duration
from reconciler.types import parse_duration as parse_duration

CelExpr = Annotated[
    str,
    Field(min_length=1, json_schema_extra={"format": "cel"}),
]
"""A CEL expression (https://cel.dev), compiled when the file is loaded."""

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
STATE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
SECRET_REF_PATTERN = (
    r"^(vault:[^#\s]+#[^#\s]+|env:[A-Za-z_][A-Za-z0-9_]*|file:\S+|transit:[^:\s]+:\S+)$"
)


class Action(Model):
    """One call of a plugin with a request (``with:``), rendered from expressions at run time."""

    plugin: str = Field(description="Registered plugin name, e.g. 'http.request'.")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="The plugin's request; strings may embed ${{ CEL }}.",
    )
    as_: str | None = Field(
        None,
        alias="as",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name under which the response is kept as outputs.<name>.",
    )
    timeout: Duration | None = Field(None, description="Deadline of this one call.")


class Poll(Model):
    """Call a check plugin every ``every`` until ``until`` (CEL over ``result``) is true."""

    plugin: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    every: Duration = Field(timedelta(seconds=5), description="Pause between calls.")
    until: CelExpr = Field(
        description="CEL over `result` (the response); true fires the transition."
    )


class Subscribe(Model):
    """Wait for a message from a subscribe plugin that satisfies ``match`` (CEL over ``message``)."""

    plugin: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    match: CelExpr | None = Field(None, description="CEL over `message`; absent means any message.")


class Approval(Model):
    """Wait for a person to approve or reject the run (through the API, the CLI or the page).

    An approval races the state's other ``after``/``poll``/``subscribe`` conditions and its
    timeout: an approval takes this transition, a rejection fails the state with
    ``ApprovalRejected`` (route it with ``on:``), and whichever fires first wins.
    """

    message: str = Field(
        "",
        max_length=2000,
        description="What the approver is asked; may embed ${{ CEL }} over inputs and outputs.",
    )
    approvers: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list,
        description=(
            "Names of the API tokens that may decide; empty means any token with the "
            "`operate` role or above."
        ),
    )
    separate_requester: bool = Field(
        False,
        description=(
            "Refuse a decision from the token whose manual sync started the run "
            "(the four-eyes principle)."
        ),
    )


ConditionKind = Literal["on", "when", "after", "poll", "subscribe", "approval", "default"]


class Transition(Model):
    """A way out of a state. A transition with only ``to`` is the default branch.

    Transitions with ``on`` are decided by how the state's actions ended; ``when`` transitions are
    choices evaluated in order after the actions succeeded; ``after``, ``poll``, ``subscribe``
    and ``approval`` race each other and the first to fire wins.
    """

    to: str = Field(description="Target state.")
    on: list[str] | None = Field(
        None,
        description="Outcome names: 'success', 'error', or error names such as 'Timeout'.",
    )
    when: CelExpr | None = Field(None, description="A choice: taken if this CEL is true.")
    after: Duration | None = Field(
        None, description="Fires once this long has passed in the state."
    )
    poll: Poll | None = None
    subscribe: Subscribe | None = None
    approval: Approval | None = Field(
        None, description="Fires when a person approves the run; a rejection fails the state."
    )

    @field_validator("on", mode="before")
    @classmethod
    def _on_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_condition(self) -> Transition:
        given = [k for k in _CONDITIONS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"a transition has one condition, found {', '.join(given)}")
        return self

    @property
    def kind(self) -> ConditionKind:
        for k in _CONDITIONS:
            if getattr(self, k) is not None:
                return k
        return "default"


_CONDITIONS: tuple[ConditionKind, ...] = ("on", "when", "after", "poll", "subscribe", "approval")


class ForEach(Model):
    """Run ``do`` once per item, ``concurrency`` at a time; output is every item's result."""

    items: CelExpr | list[Any] = Field(description="A list, or CEL that yields one.")
    as_: str = Field("item", alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: int = Field(1, ge=1, le=10000)
    tolerate: int | Annotated[str, Field(pattern=r"^\d{1,3}%$")] = Field(
        0,
        description="Failures allowed before the state fails: a count or a percentage like '10%'.",
    )
    do: list[Action] = Field(min_length=1)

    @field_validator("tolerate")
    @classmethod
    def _tolerate_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("tolerate cannot be negative")
        if isinstance(value, str) and int(value[:-1]) > 100:
            raise ValueError("tolerate percentage is at most 100%")
        return value

    def tolerated(self, total: int) -> int:
        if isinstance(self.tolerate, int):
            return self.tolerate
        return (total * int(self.tolerate[:-1])) // 100


class State(Model):
    """A node of the machine: actions (``do``) or a ``foreach``, then transitions; or an end."""

    do: list[Action] = Field(default_factory=list, description="Actions run in order.")
    action: Action | None = Field(None, description="Shorthand for a one-item `do`.", exclude=True)
    foreach: ForEach | None = None
    retry: RetryPolicy | None = None
    timeout: Duration | None = Field(
        None, description="State deadline; resets on every transition."
    )
    transitions: list[Transition] = Field(default_factory=list)
    next: str | None = Field(None, description="Shorthand for {to: X, on: success}.", exclude=True)
    on_error: str | None = Field(
        None, description="Shorthand for {to: Y, on: error}.", exclude=True
    )
    end: Literal["success", "failure"] | None = Field(None, description="Marks an end state.")

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("action") is not None:
            if data.get("do"):
                raise ValueError("use either `action` or `do`, not both")
            data["do"] = [data["action"]]
        data.pop("action", None)
        extra: list[dict[str, Any]] = []
        if data.get("next") is not None:
            extra.append({"to": data["next"], "on": ["success"]})
        on_error = data.get("onError", data.get("on_error"))
        if on_error is not None:
            extra.append({"to": on_error, "on": ["error"]})
        data.pop("next", None)
        data.pop("onError", None)
        data.pop("on_error", None)
        if extra:
            transitions = data.get("transitions") or []
            if not isinstance(transitions, list):
                return data
            data["transitions"] = [*transitions, *extra]
        return data

    @model_validator(mode="after")
    def _shape(self) -> State:
        if self.end is not None and (self.do or self.foreach or self.transitions):
            raise ValueError("an end state has no actions and no transitions")
        if self.do and self.foreach:
            raise ValueError("a state has either `do` or `foreach`, not both")
        if self.end is None and not self.transitions:
            raise ValueError("a state needs transitions (or `next`), or `end: success|failure`")
        if sum(t.approval is not None for t in self.transitions) > 1:
            raise ValueError("a state waits for one approval at most")
        return self

    @property
    def is_end(self) -> bool:
        return self.end is not None

    @property
    def has_work(self) -> bool:
        return bool(self.do or self.foreach)


class DuringChecks(Model):
    every: Duration = Field(timedelta(seconds=30))
    checks: list[Action] = Field(default_factory=list)


class Checks(Model):
    """Health gates around a run: ``pre`` gates it, ``during`` aborts it, ``post`` fails it."""

    pre: list[Action] = Field(default_factory=list)
    during: DuringChecks | None = None
    post: list[Action] = Field(default_factory=list)


class Metadata(Model):
    name: str = Field(max_length=63, pattern=NAME_PATTERN, description="Unique in the repository.")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="vault:<path>#<key>, env:NAME, file:/path or transit:<key>:<ciphertext>.",
    ),
]


WindowKind = Literal["allow", "deny"]


def _check_schedule(value: str) -> str:
    """A 5-field cron expression (weekdays numbered as in cron, 0 = Sunday), else ``ValueError``."""
    from reconciler.config.cron import cron_trigger  # APScheduler: only where a window is declared

    if len(value.split()) != 5:
        raise ValueError(f"schedule {value!r} must have 5 fields (minute hour day month weekday)")
    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron {value!r}: {exc}") from None
    return value


def _check_time_zone(value: str) -> str:
    """An IANA time zone name ``zoneinfo`` knows (else ``ValueError``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None
    return value


MAX_WINDOW_DURATION = timedelta(days=36500)
"""The longest ``duration`` of a change window: a century is "for good", and longer durations
overflow the date arithmetic of :mod:`reconciler.daemon.windows`."""


class SyncWindow(Model):
    """A change window: a time when runs may (``allow``) or may not (``deny``) start.

    The window opens at every instant ``schedule`` fires (read in ``timeZone``, daylight saving
    time included) and stays open for ``duration``. A workflow with at least one allow window
    starts runs only while one of them is open; an open deny window blocks runs, and wins over
    allow windows. A run in progress is never stopped by a window.
    """

    kind: WindowKind = Field(
        description="allow: runs may start only while open; deny: they may not."
    )
    schedule: str = Field(
        max_length=100,  # each item of a field is tried at every step of a window's walk
        description="When the window opens, as a 5-field cron expression "
        "(minute hour day month weekday), e.g. '0 22 * * 1-5'; at most 100 characters.",
    )
    duration: Duration = Field(description="How long the window stays open, e.g. '4h'.")
    time_zone: str = Field(
        "UTC", description="IANA time zone the schedule is read in, e.g. 'Europe/Paris'."
    )
    manual_sync: bool = Field(
        False,
        description="Whether a manual sync may run while this window blocks runs.",
    )
    description: str | None = Field(
        None,
        max_length=200,  # repeated in every status message, log line and refusal naming it
        description="Free text shown with the window; at most 200 characters.",
    )

    _schedule_ok = field_validator("schedule")(_check_schedule)
    _time_zone_ok = field_validator("time_zone")(_check_time_zone)

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a window's duration must be longer than zero")
        if value > MAX_WINDOW_DURATION:
            # longer would leave the calendar (year 1 or 9999) when the window is evaluated
            raise ValueError(
                f"a window's duration is at most {MAX_WINDOW_DURATION.days}d (a century)"
            )
        return value


class WindowSelector(Model):
    """Which workflows an operator's window applies to: every condition given must hold."""

    names: list[str] = Field(
        default_factory=list,
        description="Workflow name globs (fnmatch: '*', '?', '[a-z]'); any may match.",
    )
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels the workflow must all carry with these values."
    )


class OperatorWindow(SyncWindow):
    """A window from the operator's windows file, for every workflow or those ``selector`` picks."""

    selector: WindowSelector | None = Field(
        None, description="Which workflows it applies to; absent: every workflow."
    )


class Spec(Model):
    interval: Duration | None = Field(None, description="Drift re-check cadence, e.g. '5m'.")
    cron: str | None = Field(None, description="Drift re-check as a 5-field cron expression.")
    timeout: Duration | None = Field(None, description="Deadline of a whole run.")
    depends_on: list[str] = Field(default_factory=list)
    suspend: bool = False
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The desired state; `inputs.*`."
    )
    parameters: dict[Annotated[str, Field(pattern=PARAMETER_NAME_PATTERN)], Parameter] = Field(
        default_factory=dict,
        description="Typed inputs a caller may set for one run (`inputs.*`; the default "
        "otherwise); a name may not also be in `inputs`.",
    )
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    observe: Action | None = Field(None, description="Read-only probe (check plugins only).")
    desired: Any = Field(None, description="Must be a subset of what observe returns.")
    in_sync: CelExpr | None = Field(None, description="CEL over `observed`; true means in sync.")
    checks: Checks = Field(default_factory=Checks)
    start: str
    states: dict[Annotated[str, Field(pattern=STATE_PATTERN)], State] = Field(min_length=1)
    on_delete: str | None = Field(
        None, description="State to run when the file is removed from git."
    )
    windows: list[SyncWindow] = Field(
        default_factory=list,
        description="Change windows: when runs may (allow) or may not (deny) start.",
    )

    @model_validator(mode="after")
    def _schedule(self) -> Spec:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set either `interval` or `cron`, not both")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(
                f"cron {self.cron!r} must have 5 fields (minute hour day month weekday)"
            )
        if self.desired is not None and self.in_sync is not None:
            raise ValueError("set either `desired` or `inSync`, not both")
        if (self.desired is not None or self.in_sync is not None) and self.observe is None:
            raise ValueError("`desired`/`inSync` need an `observe` probe")
        return self


class MockError(Model):
    error: str = Field(description="Name of the error to raise, e.g. 'Conflict'.")
    message: str = ""
    retryable: bool | None = None


class TestExpectation(Model):
    path: list[str] | None = Field(None, description="States visited, in order.")
    end: Literal["success", "failure"] | None = None
    outputs: dict[str, Any] | None = Field(None, description="Subset of outputs expected.")


class WorkflowTest(Model):
    """An inline unit test: plugins replaced by mocks, the path taken is checked."""

    name: str
    inputs: dict[str, Any] = Field(default_factory=dict, description="Overrides of spec.inputs.")
    mocks: dict[str, list[dict[str, Any] | MockError]] = Field(
        default_factory=dict,
        description="Per plugin, the responses its successive calls return (or errors raised).",
    )
    approvals: list[Literal["approve", "reject"]] = Field(
        default_factory=list,
        description=(
            "Decisions given, in order, to the approval gates the run reaches; once they are "
            "used up a gate waits, so its `after` or the state's timeout fires."
        ),
    )
    expect: TestExpectation = Field(default_factory=TestExpectation)


class Workflow(Model):
    """One workflow document."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["Workflow"]
    metadata: Metadata
    spec: Spec
    tests: list[WorkflowTest] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.metadata.name
