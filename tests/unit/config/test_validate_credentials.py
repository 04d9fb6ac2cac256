"""Clear-text credentials in workflows: well-known key formats and random-looking literals are
flagged with a hint to use a secret reference; ordinary values, digests and references are not."""

from __future__ import annotations

import pytest

from reconciler.config.validate import find_credentials


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("hvs.CAESIJ8y3b0Wq1mQx7k2LwV9nR4tZpA5sDfG", "a Vault token"),
        ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "a Google API key"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe secret key"),
        ("glpat-xYz12AbC34dEf56GhI78jK", "a GitLab token"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "a JSON Web"),
        ("https://hooks.slack.com/services/T00000000/B00000000/XXXX", "a Slack webhook URL"),
        ("curl -H 'X-Key: 9fQ2mZ7vLx4KpR8tWb3nYc6H' https://api", "random-looking 24-character"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "random-looking 40-character"),
    ],
)
def test_key_formats_and_random_literals_are_flagged_without_the_value(
    value: str, what: str
) -> None:
    found = list(find_credentials({"args": [value]}))
    assert len(found) == 1
    loc, message = found[0]
    assert loc == ("args", 0)
    assert what in message
    assert value not in message


@pytest.mark.parametrize(
    "value",
    [
        "a95c4d1e2f3b4a5c6d7e8f90a1b2c3d4e5f6a7b8",  # a commit: hex, no upper case
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "123e4567-e89b-12d3-a456-426614174000",
        "/var/lib/reconciler/quickstart-out/report.txt",
        "ReconcilerDeploymentControllerName",
        "transit:app:vault:v1:QmFzZTY0RW5jb2RlZENpcGhlcnRleHQxMjM0NTY3ODkw",
        "${{ secrets.apiKey }}",
        "The quick brown fox jumps over the lazy dog 1234567890",
    ],
)
def test_ordinary_values_digests_and_references_are_not_flagged(value: str) -> None:
    assert list(find_credentials({"args": [value]})) == []


def test_a_random_looking_literal_is_a_warning_and_a_known_format_an_error() -> None:
    from reconciler.config.loader import load_text
    from reconciler.config.validate import validate_workflow
    from reconciler.plugin import PluginRegistry

    text = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: keys}
spec:
  inputs:
    build: 9fQ2mZ7vLx4KpR8tWb3nYc6H
    vault: hvs.CAESIJ8y3b0Wq1mQx7k2LwV9nR4tZpA5sDfG
  start: done
  states:
    done: {end: success}
"""
    [loaded] = load_text(text, path="keys.yaml").workflows
    problems = validate_workflow(loaded, PluginRegistry.discover())
    by_line = {p.line: p for p in problems if "secret reference" in p.message}
    assert by_line[6].severity == "warning" and "random-looking" in by_line[6].message
    assert by_line[7].severity == "error" and "a Vault token" in by_line[7].message
