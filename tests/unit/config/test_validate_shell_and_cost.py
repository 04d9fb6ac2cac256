"""``validate`` says what happens to ``${{ }}`` in shell text, and refuses runaway CEL."""

from __future__ import annotations

from textwrap import dedent

from reconciler_plugins.files import FileRead
from reconciler_plugins.shell import ShellRun

from reconciler.config.loader import load_text
from reconciler.config.snapshot import Problem
from reconciler.config.validate import validate_workflow
from reconciler.plugin import PluginRegistry

REGISTRY = PluginRegistry({"shell.run": ShellRun, "file.read": FileRead})

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: demo
spec:
  inputs: {{l: [1, 2, 3]}}
  observe: {{plugin: file.read, with: {{path: /tmp/probe}}}}
  start: run
  states:
    run:
      do:
        - plugin: shell.run
          with:
            shell: true
            command: {command}
      transitions:
        - {{on: [error], to: failed}}
        - {{to: done, when: "{when}"}}
        - {{to: done}}
    done: {{end: success}}
    failed: {{end: failure}}
"""


def check(command: str, when: str = "true") -> list[Problem]:
    result = load_text(WORKFLOW.format(command=command, when=when), path="w.yaml")
    assert result.problems == [], [str(p) for p in result.problems]
    [lw] = result.workflows
    return validate_workflow(lw, REGISTRY, strict=True)


def test_strict_validate_says_a_shell_value_is_passed_as_one_quoted_word() -> None:
    problems = check('"cat ${{ observed.content }}"')

    assert [(p.line, p.column, p.severity) for p in problems] == [(15, 22, "warning")]
    assert "shlex.quote" in problems[0].message
    assert problems[0].format().startswith("w.yaml:15:22: warning:")


def test_a_shell_value_in_a_here_document_is_an_error_at_its_line() -> None:
    problems = check(dedent('"cat <<EOF\\n${{ observed.content }}\\nEOF"'))

    assert [(p.line, p.severity) for p in problems] == [(15, "error")]
    assert "here-document" in problems[0].message


def test_four_nested_comprehensions_are_an_error_at_their_line() -> None:
    deep = "inputs.l.all(a, inputs.l.all(b, inputs.l.all(c, inputs.l.all(d, a+b+c+d >= 0))))"
    problems = [p for p in check("echo hi", when=deep) if p.severity == "error"]

    assert [p.line for p in problems] == [18]
    assert "nested 4 deep" in problems[0].message
