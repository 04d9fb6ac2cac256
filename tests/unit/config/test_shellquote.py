"""Shell text with ``${{ }}`` is safe under every ``/bin/sh`` a daemon may find: dash and bash.

The daemon runs ``shell: true`` commands with ``/bin/sh``, which is dash on Debian and bash on
Fedora, RHEL and many images; a rendering is safe only when both shells read the value as data.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.config.shellquote import render_shell, shell_slots
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


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo ${{ v }}", ("word", None)),
        ("echo '${{ v }}'", ("single", None)),
        ('echo "a ${{ v }}"', ("double", None)),
        ("echo $(cat ${{ v }})", ("word", None)),
        ("echo (${{ v }})", ("word", None)),
        ("echo $((1)) ${{ v }}", ("word", None)),
        ("echo ${x} ${{ v }}", ("word", None)),
        ("echo $(echo ')') ${{ v }}", ("word", None)),
        ("echo a#${{ v }}", ("word", None)),
        ('echo "$\'" ${{ v }}', ("word", None)),
        ("echo a\\ #'\n${{ v }}\n'", ("single", None)),
        ("echo \\${{ v }}", (None, "after a backslash")),
        ("echo $${{ v }}", (None, "right after a $")),
        ("echo `${{ v }}`", (None, "inside backquotes (use $( ) instead)")),
        ("echo ${x:-${{ v }}}", (None, "inside ${ }")),
        ("echo $(( ${{ v }} + 1 ))", (None, "inside an arithmetic expansion $(( ))")),
        ("cat <<EOF\n${{ v }}\nEOF", (None, "after a here-document (<<)")),
        ("echo $'x' ${{ v }}", (None, "after ANSI-C quoting $'...'")),
    ],
)
def test_each_template_gets_the_quoting_of_its_context_or_a_reason_to_refuse(
    command: str, expected: tuple[str | None, str | None]
) -> None:
    assert [(slot.quoting, slot.refused) for slot in shell_slots(command)] == [expected]


def test_a_template_in_a_comment_is_no_slot() -> None:
    assert shell_slots("echo hi # ${{ v }}") == []


@pytest.mark.parametrize("shell", SHELLS)
def test_a_template_after_a_comment_holding_one_is_still_quoted(shell: str) -> None:
    command = "# ${{ inputs.a }} is not read\nprintf '%s' ${{ inputs.b }}"

    assert [(slot.source.strip(), slot.quoting) for slot in shell_slots(command)] == [
        ("inputs.b", "word")
    ]
    rendered = render_shell(command, {"inputs": {"a": "x", "b": "x; echo pwned"}})
    out = subprocess.run([shell, "-c", rendered], capture_output=True, text=True, check=True)
    assert out.stdout == "x; echo pwned"
