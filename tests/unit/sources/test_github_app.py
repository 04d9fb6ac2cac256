"""git's GitHub App credential helper: which requests it answers, its cache, its errors.

The helper's exchange with GitHub's API (a stand-in checking the signed JWT) and with git is
in ``tests/integration/deploy/test_chart_git_credentials.py``; here nothing reaches a server
except where a test points the API at a closed port.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import CredentialsUnavailable
from reconciler.sources.github_app import (
    GitHubApp,
    InstallationToken,
    answer,
    app_jwt,
    installation_token,
    read_request,
    remember,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def app(tmp_path: Path, **environ: str) -> GitHubApp:
    return GitHubApp.from_environment(
        {
            "HOME": str(tmp_path),
            "RECONCILER_GITHUB_APP_ID": "42",
            "RECONCILER_GITHUB_APP_INSTALLATION_ID": "7",
            "RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem"),
            **environ,
        }
    )


def test_missing_settings_are_named_by_their_variables(tmp_path: Path) -> None:
    with pytest.raises(CredentialsUnavailable) as failure:
        GitHubApp.from_environment({"HOME": str(tmp_path), "RECONCILER_GITHUB_APP_ID": "42"})
    named = str(failure.value).rpartition(": ")[2].split(", ")
    assert named == [
        "RECONCILER_GITHUB_APP_INSTALLATION_ID",
        "RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE",
    ]


def test_the_git_host_is_github_com_for_the_public_api_and_the_api_host_for_enterprise(
    tmp_path: Path,
) -> None:
    assert app(tmp_path).git_host == "github.com"
    enterprise = app(tmp_path, RECONCILER_GITHUB_API_URL="https://ghe.example.com/api/v3")
    assert enterprise.git_host == "ghe.example.com"


@pytest.mark.parametrize(
    "request_lines",
    [
        "protocol=https\nhost=gitlab.example.com\n\n",  # another host
        "protocol=http\nhost=github.com\n\n",  # not the API's scheme
        "protocol=https\n\n",  # no host
    ],
)
def test_requests_for_other_hosts_get_no_answer_and_mint_nothing(
    tmp_path: Path, request_lines: str
) -> None:
    # The key file is missing: had the helper tried to mint, it would have raised.
    request = read_request(io.StringIO(request_lines))
    assert answer("get", request, app=app(tmp_path)) == ""


def test_a_fresh_cached_token_is_answered_without_asking_github(tmp_path: Path) -> None:
    github = app(tmp_path, RECONCILER_GITHUB_API_URL=closed_port_url())
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    remember(github, InstallationToken(token="ghs_cached", expires_at=in_an_hour))
    request = {"protocol": "http", "host": "127.0.0.1:8443"}

    assert installation_token(github) == "ghs_cached"
    assert answer("get", request, app=github) == "username=x-access-token\npassword=ghs_cached\n"
    assert oct(github.cache_file.stat().st_mode & 0o777) == "0o600"


def test_a_token_about_to_expire_is_replaced_and_an_unreachable_api_is_named(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    github = app(tmp_path, RECONCILER_GITHUB_API_URL=url)
    (tmp_path / "app.pem").write_text("not a key")
    remember(github, InstallationToken(token="ghs_old", expires_at=NOW + timedelta(minutes=4)))
    github = app(
        tmp_path,
        RECONCILER_GITHUB_API_URL=url,
        RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE=str(tmp_path / "app.pem"),
    )

    with pytest.raises(CredentialsUnavailable) as failure:
        installation_token(github, now=NOW)
    assert "GitHub App 42 (installation 7)" in str(failure.value)
    assert "not a PEM RSA private key" in str(failure.value)
    assert "not a key" not in str(failure.value)


def test_an_unreadable_private_key_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialsUnavailable) as failure:
        app_jwt(app(tmp_path), now=NOW)
    assert str(tmp_path / "missing.pem") in str(failure.value)


def test_erase_drops_the_cached_token(tmp_path: Path) -> None:
    github = app(tmp_path)
    remember(github, InstallationToken(token="ghs_refused", expires_at=NOW + timedelta(hours=1)))

    assert answer("erase", {"protocol": "https", "host": "github.com"}, app=github) == ""
    assert not github.cache_file.exists()


def test_the_helper_tells_git_what_failed_and_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.sources.github_app", "get"],
        input="protocol=https\nhost=github.com\n\n",
        env={"HOME": str(tmp_path), "RECONCILER_GITHUB_APP_ID": "42"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: reconciler: GitHub App credentials for git")
