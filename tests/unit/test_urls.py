"""mask_url: the one way a URL is shown in a log line or an error, credentials masked."""

from __future__ import annotations

import pytest

from reconciler.urls import mask_url, mask_urls_in_text, url_userinfo


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # what the five former helpers did, in one format: the whole userinfo becomes ***
        ("https://user:pass@host/r.git", "https://***@host/r.git"),
        ("https://ghp_tokenonly@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("nats://app:s3cret@host:4222", "nats://***@host:4222"),
        ("redis://:s3cret@host:6379/0", "redis://***@host:6379/0"),
        ("https://token@vault:8200/v1", "https://***@vault:8200/v1"),
        (
            "postgresql+psycopg://app:pw@127.0.0.1:1/test",
            "postgresql+psycopg://***@127.0.0.1:1/test",
        ),
        # no credentials: unchanged
        ("nats://host:4222", "nats://host:4222"),
        ("file:///srv/r.git", "file:///srv/r.git"),
        ("sqlite+aiosqlite:///data/store.db", "sqlite+aiosqlite:///data/store.db"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("ssh://git@host:2222/o/r.git", "ssh://git@host:2222/o/r.git"),
        ("ssh://git:pw@host/o/r.git", "ssh://***@host/o/r.git"),
        ("not a url", "not a url"),
        ("", ""),
    ],
)
def test_userinfo_is_masked_whole_and_plain_urls_are_unchanged(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:p@ss@host:6379/0", "redis://***@host:6379/0"),
        ("nats://app:a@b:c@h1:4222,h2:4222/x", "nats://***@h1:4222,h2:4222/x"),
        ("redis://:pa:ss@host", "redis://***@host"),
        ("redis://:pa/ss@host:6379/0", "redis://***@host:6379/0"),
        ("https://u:pa?ss#w@host/x", "https://***@host/x"),
        ("https://u:p@ss@[::1]:8200/v1", "https://***@[::1]:8200/v1"),
    ],
)
def test_a_password_holding_at_colon_or_slash_is_masked_up_to_the_last_at_before_the_host(
    url: str, shown: str
) -> None:
    assert mask_url(url) == shown


def test_an_at_sign_in_the_path_is_not_taken_for_userinfo() -> None:
    assert mask_url("https://host/users/@me") == "https://host/users/@me"
    assert url_userinfo("https://host/users/@me") == ""
    assert url_userinfo("redis://:p@ss@host/0") == ":p@ss"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h/v1?api_key=K1&page=2", "https://h/v1?api_key=***&page=2"),
        ("https://h/?access_token=T&Signature=S", "https://h/?access_token=***&Signature=***"),
        ("https://h/?password=p;user=bob", "https://h/?password=***;user=bob"),
        (
            "https://h/?X-Amz-Signature=abc&X-Amz-Date=1",
            "https://h/?X-Amz-Signature=***&X-Amz-Date=1",
        ),
        ("https://h/?client_secret=s&sig=x", "https://h/?client_secret=***&sig=***"),
        ("https://h/cb#id_token=t&state=1", "https://h/cb#id_token=***&state=1"),
        ("https://h/?q=token", "https://h/?q=token"),
        ("https://u:p@h/?token=t", "https://***@h/?token=***"),
    ],
)
def test_query_and_fragment_parameters_named_like_credentials_lose_their_value(
    url: str, shown: str
) -> None:
    assert mask_url(url) == shown


def test_every_url_in_a_text_is_masked() -> None:
    text = "fetch https://u:s3cr3t@host/r.git failed; retry 'redis://:p@w@cache:6379' later"
    assert mask_urls_in_text(text) == (
        "fetch https://***@host/r.git failed; retry 'redis://***@cache:6379' later"
    )
