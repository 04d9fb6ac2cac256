"""Built-in ``shell.run``: run a command as a child process, safely by default.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into a
:class:`ShellRunRequest` and awaits :meth:`ShellRun.run`; the response becomes ``outputs.<as>``
and is journaled by the store. The daemon's policy (``--allow-plugins``) decides whether a
repository may use this plugin at all.

What callers may rely on:

* no shell is involved unless the request says ``shell: true``: ``argv`` is executed directly,
  so ``$HOME``, ``;`` or ``*`` in an argument are passed literally;
* with ``shell: true``, every ``${{ }}`` value in ``command`` reaches the shell as one quoted
  word (the engine quotes it with :func:`shlex.quote`, see
  :mod:`reconciler.config.shellquote`), so a value is never parsed as shell syntax;
* the child runs in its own process group (session); a timeout or a cancellation kills the
  whole group with SIGKILL and reaps it before the call returns, so no grandchild survives;
* the child does not inherit the daemon's environment (which holds its tokens), only ``PATH``,
  ``HOME``, ``LANG``, ``LC_ALL``, ``LC_CTYPE``, ``TZ``, ``USER``, ``LOGNAME`` and ``TMPDIR``,
  plus ``env`` from the request;
* stdout and stderr are each capped to their last 64 KiB (``truncated`` says when) and pass
  through ``context.redact`` before they are returned or put in an error;
* a failure says why: :class:`~reconciler.errors.CommandFailed` (and ``Timeout``) carry the
  redacted tail of stdout and of stderr (last 20 lines, at most 2 KiB each) in ``details``, which
  the journal, ``/api/v1/runs/{id}`` and ``reconciler runs ID`` show, and the message ends with
  the command's last line of output ("sh exited with code 1: Job for web.service failed…"), which
  the run's error and the workflow's status show.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from reconciler.config.models import Duration
from reconciler.errors import CommandFailed, NotFound, PathNotAllowed, Timeout
from reconciler.plugin import ActionContext, LocalPath, Plugin, Request, Response

__all__ = ["OUTPUT_CAP", "ShellRun", "ShellRunRequest", "ShellRunResponse", "output_tail"]

OUTPUT_CAP = 64 * 1024
"""Bytes of stdout and of stderr kept (the tail)."""

ERROR_TAIL = 2048
"""Characters of stdout and of stderr kept in a failure's details (the tail)."""

ERROR_TAIL_LINES = 20
"""Lines of stdout and of stderr kept in a failure's details (the tail)."""

LAST_LINE = 200
"""Characters of the output's last line quoted in a failure's message."""

INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "TMPDIR")
"""The only variables of the daemon's environment a child sees (besides ``env``)."""

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ShellRunRequest(Request):
    """What ``shell.run`` runs. Exactly one of ``argv`` or ``command`` (with ``shell: true``)."""

    model_config = ConfigDict(alias_generator=to_camel)

    shell_fields: ClassVar[frozenset[str]] = frozenset({"command"})
    """``command`` is shell text: each ``${{ }}`` in it becomes one quoted word (or is refused)."""

    argv: list[str] | None = Field(
        None,
        min_length=1,
        description="Program and arguments, executed directly (no shell), e.g. ['git', 'gc'].",
    )
    command: str | None = Field(
        None,
        min_length=1,
        description=(
            "A command line for /bin/sh -c; only allowed together with shell: true. "
            "Each ${{ }} value in it is quoted as one shell word."
        ),
    )
    shell: bool = Field(
        False, description="Run `command` through /bin/sh -c. Off by default: prefer argv."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables; the daemon's own environment is not inherited.",
    )
    cwd: Annotated[str | None, LocalPath()] = Field(
        None,
        description="Working directory; relative paths resolve against the workdir. It must "
        "lie under a file root (--file-root, default the workdir).",
    )
    timeout: Duration | None = Field(
        None,
        description="Kill the command's process group and raise Timeout after this long.",
    )
    stdin: str | None = Field(None, description="Text fed to the command's standard input.")
    creates: Annotated[str | None, LocalPath()] = Field(
        None,
        description=(
            "If this path exists the command is skipped (changed=false), as in Ansible; "
            "relative paths resolve against the workdir. It must lie under a file root."
        ),
    )
    changed: bool = Field(
        True,
        description=(
            "Report changed=true when the command ran and exited with an ok code. Set false "
            "for read-only commands."
        ),
    )
    ok_exit_codes: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Exit codes that count as success; any other raises CommandFailed.",
    )

    @model_validator(mode="after")
    def _one_way_to_run(self) -> ShellRunRequest:
        if self.shell:
            if self.command is None or self.argv is not None:
                raise ValueError("shell: true needs `command` (a string) and no `argv`")
        else:
            if self.command is not None:
                raise ValueError(
                    "`command` runs through a shell, which must be asked for explicitly: "
                    "add shell: true, or use `argv` (a list) instead"
                )
            if self.argv is None:
                raise ValueError("give `argv` (a list), or `command` with shell: true")
        return self

    def program(self) -> list[str]:
        if self.shell:
            assert self.command is not None  # guaranteed by _one_way_to_run
            return ["/bin/sh", "-c", self.command]
        assert self.argv is not None
        return list(self.argv)


class ShellRunResponse(Response):
    """What the command did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(
        False, description="True if the command ran (and the request did not say changed: false)."
    )
    exit_code: int | None = Field(None, description="Exit status; null when skipped by `creates`.")
    stdout: str = Field("", description="Standard output (last 64 KiB, secrets replaced by ***).")
    stderr: str = Field("", description="Standard error (last 64 KiB, secrets replaced by ***).")
    truncated: bool = Field(False, description="True if stdout or stderr exceeded 64 KiB.")
    skipped: bool = Field(False, description="True if `creates` existed and nothing ran.")


class _Tail:
    """The last ``cap`` bytes of a stream."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


async def _drain(stream: asyncio.StreamReader | None, into: _Tail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        into.add(chunk)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stream is None:
        return
    try:
        if data:
            stream.write(data)
            await stream.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read all of its input: its exit code tells the story
    finally:
        stream.close()


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (it leads its own session, so pgid == pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill the group and wait for the child, even while the calling task is being cancelled."""
    _kill_group(proc)
    with contextlib.suppress(ProcessLookupError):
        await asyncio.shield(proc.wait())


def output_tail(text: str) -> str:
    """The end of an (already redacted) output as a failure keeps it: its last
    :data:`ERROR_TAIL_LINES` lines, at most :data:`ERROR_TAIL` characters."""
    lines = text.splitlines(keepends=True)[-ERROR_TAIL_LINES:]
    return "".join(lines)[-ERROR_TAIL:]


def failure(stdout: str, stderr: str) -> tuple[str, dict[str, str]]:
    """What a failed command said, from its redacted output: ``": <last line>"`` to end the
    error's message (stderr's, else stdout's; ``""`` when both are empty) and the tails for
    its details."""
    last = next(
        (
            line.strip()
            for text in (stderr, stdout)
            for line in reversed(text.splitlines())
            if line.strip()
        ),
        "",
    )
    if len(last) > LAST_LINE:
        last = last[: LAST_LINE - 1] + "…"
    return (f": {last}" if last else ""), {
        "stdout": output_tail(stdout),
        "stderr": output_tail(stderr),
    }


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update(extra)
    return env


class ShellRun(Plugin[ShellRunRequest, ShellRunResponse]):
    """Run a command (argv, or a shell command line with shell: true) and capture its output.

    Errors: ``CommandFailed`` (an exit code not in ``okExitCodes``; details hold ``exitCode`` and
    the redacted tails of ``stdout`` and ``stderr``, the message ends with the last line; a program that cannot be found or executed fails with exit
    code 127 or 126, as in a shell), ``NotFound`` (``cwd`` does not exist), ``PathNotAllowed``
    (``cwd`` or ``creates`` outside the file roots or under a denied directory), ``Timeout``.
    No default retry: a command is not assumed to be safe to repeat.
    """

    Request = ShellRunRequest
    Response = ShellRunResponse
    errors = (CommandFailed, NotFound, PathNotAllowed, Timeout)

    async def run(self, request: ShellRunRequest, context: ActionContext) -> ShellRunResponse:
        workdir = Path(context.workdir)
        grants = context.granted()
        if request.creates is not None:
            creates = grants.check_path(request.creates, base=workdir)
            if creates.exists():
                return ShellRunResponse(changed=False, exit_code=None, skipped=True)

        # the working directory, given or not, must be granted: never the data dir or a clone
        cwd = grants.check_path(request.cwd if request.cwd is not None else ".", base=workdir)
        if not cwd.is_dir():
            raise NotFound(f"working directory {cwd} does not exist", details={"cwd": str(cwd)})

        argv = request.program()
        shown = context.redact(argv[0])
        seconds = request.timeout.total_seconds() if request.timeout is not None else None
        left = context.time_left()
        if left is not None:
            seconds = left if seconds is None else min(seconds, left)

        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE
                if request.stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=_child_env(request.env),
                start_new_session=True,
            )
        except FileNotFoundError:
            raise CommandFailed(
                f"{shown}: command not found", details={"exitCode": 127, "stdout": "", "stderr": ""}
            ) from None
        except PermissionError:
            raise CommandFailed(
                f"{shown}: permission denied", details={"exitCode": 126, "stdout": "", "stderr": ""}
            ) from None
        except OSError as exc:
            raise CommandFailed(
                f"{shown}: cannot execute ({exc.strerror})",
                details={"exitCode": 126, "stdout": "", "stderr": ""},
            ) from None

        out, err = _Tail(OUTPUT_CAP), _Tail(OUTPUT_CAP)
        stdin_data = request.stdin.encode() if request.stdin is not None else None
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(
                    _feed(proc.stdin, stdin_data),
                    _drain(proc.stdout, out),
                    _drain(proc.stderr, err),
                    proc.wait(),
                )
        except TimeoutError:
            await _reap(proc)
            _, tails = failure(context.redact(out.text()), context.redact(err.text()))
            raise Timeout(
                f"{shown} did not finish within {seconds:g}s; its process group was killed",
                details=tails,
            ) from None
        except BaseException:
            # cancellation (or anything unexpected): leave no process behind, then re-raise
            await _reap(proc)
            raise

        code = proc.returncode
        assert code is not None
        stdout, stderr = context.redact(out.text()), context.redact(err.text())
        if code not in request.ok_exit_codes:
            said, tails = failure(stdout, stderr)
            raise CommandFailed(
                f"{shown} exited with code {code}{said}", details={"exitCode": code, **tails}
            )
        return ShellRunResponse(
            changed=request.changed,
            exit_code=code,
            stdout=stdout,
            stderr=stderr,
            truncated=out.truncated or err.truncated,
        )
