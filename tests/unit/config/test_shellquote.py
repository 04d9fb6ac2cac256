"""Shell text with ``${{ }}`` is safe under every ``/bin/sh`` a daemon may find: dash and bash.

The daemon runs ``shell: true`` commands with ``/bin/sh``, which is dash on Debian and bash on
Fedora, RHEL and many images; a rendering is safe only when both shells read the value as data.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.config.shellquote import render_shell
from reconciler.errors import ShellValueRefused

SHELLS = [name for name in ("dash", "bash") if shutil.which(name)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "command",
    [
        "echo $'a${{ value }}b'",
        "echo $'\\'${{ value }}'",
        "echo $'\\''${{ value }}'",
        "echo x$'\\n' ${{ value }}",
    ],
)
def test_ansi_c_quoting_cannot_turn_a_value_into_a_command(
    tmp_path: Path, shell: str, command: str
) -> None:
    marker = tmp_path / "pwned"
    value = f"; touch {marker}; #"
    try:
        rendered = render_shell(command, {"value": value})
    except ShellValueRefused as refused:
        assert "$'" in str(refused)
        return
    subprocess.run([shell, "-c", rendered], cwd=tmp_path, capture_output=True, timeout=10)
    assert not marker.exists(), f"{shell} ran the value of {rendered!r}"


def test_a_dollar_quote_inside_double_quotes_is_literal_and_values_stay_quoted() -> None:
    assert render_shell("""echo "$'" ${{ value }}""", {"value": "a b"}) == """echo "$'" 'a b'"""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "command",
    [
        "echo a\\ #'\n${{ value }}\n'",
        "echo a\\\n#'\n${{ value }}\n'",
        "echo a\\;#'\n${{ value }}\n'",
    ],
)
def test_a_hash_after_an_escaped_character_is_not_taken_for_a_comment(
    tmp_path: Path, shell: str, command: str
) -> None:
    # the shell reads `a\ #'` as one word and opens a quote the scanner must not skip
    marker = tmp_path / "pwned"
    rendered = render_shell(command, {"value": f"\ntouch {marker}\n"})
    subprocess.run([shell, "-c", rendered], cwd=tmp_path, capture_output=True, timeout=10)
    assert not marker.exists(), f"{shell} ran the value of {rendered!r}"
