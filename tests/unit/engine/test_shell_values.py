"""``${{ }}`` values in a ``shell: true`` command reach ``/bin/sh`` as data, never as syntax.

The real ``shell.run`` and ``file.read`` plugins run a real shell on real files: a file an
observe probe read is the value a committer (or whoever can write that file) controls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reconciler_plugins.files import FileRead
from reconciler_plugins.shell import ShellRun

from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry

ATTACK = "x; touch {marker}; echo $(touch {marker}) `touch {marker}` ' \" \\"


@pytest.fixture
def shell_engine(tmp_path: Path) -> Engine:
    registry = PluginRegistry()
    registry.register("shell.run", ShellRun)
    registry.register("file.read", FileRead)
    return Engine(
        registry,
        journal=MemoryJournal(),
        workdir=tmp_path,
        grants=Grants.local(tmp_path),
    )


def shell_workflow(wf: Any, command: str, probe: Path) -> Any:
    return wf(
        {
            "say": {
                "do": [
                    {
                        "plugin": "shell.run",
                        "as": "said",
                        "with": {"shell": True, "command": command},
                    }
                ],
                "transitions": [
                    {"on": ["success"], "to": "done"},
                    {"on": ["ShellValueRefused"], "to": "refused"},
                ],
            },
            "done": {"end": "success"},
            "refused": {"end": "failure"},
        },
        observe={"plugin": "file.read", "with": {"path": str(probe)}},
    )


@pytest.mark.parametrize(
    "command",
    [
        "printf %s ${{ observed.content }}",
        'printf %s "${{ observed.content }}"',
        "printf %s '${{ observed.content }}'",
        'printf %s "$(printf %s ${{ observed.content }})"',
    ],
)
async def test_a_probed_file_content_in_a_shell_command_is_one_quoted_word_not_a_command(
    shell_engine: Engine, wf: Any, tmp_path: Path, command: str
) -> None:
    marker = tmp_path / "pwned"
    probe = tmp_path / "content"
    content = ATTACK.format(marker=marker)
    probe.write_text(content)
    workflow = shell_workflow(wf, command, probe)
    observation = await shell_engine.observe(workflow)
    assert observation.error is None, observation.error

    result = await shell_engine.run(workflow, observed=observation.observed)

    assert result.ok, result.error
    assert not marker.exists()
    assert result.outputs["said"]["stdout"] == content


@pytest.mark.parametrize(
    "command",
    [
        "cat <<EOF\n${{ observed.content }}\nEOF",
        "echo `echo ${{ observed.content }}`",
        "echo $(( ${{ observed.content }} + 1 ))",
        "echo \\${{ observed.content }}",
    ],
)
async def test_a_value_where_quoting_cannot_work_is_refused_before_the_shell_runs(
    shell_engine: Engine, wf: Any, tmp_path: Path, command: str
) -> None:
    marker = tmp_path / "pwned"
    probe = tmp_path / "content"
    probe.write_text(f"$(touch {marker})")
    workflow = shell_workflow(wf, command, probe)
    observation = await shell_engine.observe(workflow)

    result = await shell_engine.run(workflow, observed=observation.observed)

    assert result.path == ["say", "refused"]  # routed by on: [ShellValueRefused]
    assert "ShellValueRefused" in str(result.error)
    assert not marker.exists()


async def test_argv_values_are_still_passed_as_they_are(
    shell_engine: Engine, wf: Any, tmp_path: Path
) -> None:
    workflow = wf(
        {
            "say": {
                "do": [
                    {
                        "plugin": "shell.run",
                        "as": "said",
                        "with": {"argv": ["printf", "%s", "${{ inputs.text }}"]},
                    }
                ],
                "next": "done",
            },
            "done": {"end": "success"},
        },
        inputs={"text": "a 'b' $HOME"},
    )

    result = await shell_engine.run(workflow)

    assert result.ok, result.error
    assert result.outputs["said"]["stdout"] == "a 'b' $HOME"
