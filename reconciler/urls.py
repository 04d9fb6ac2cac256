"""URLs fit for a message: one :func:`mask_url` for every place a URL is logged or put in an error.

A leaf module (standard library only) so that sources, the store, the secret machinery and the
built-in plugins can all use it without import cycles.

What a caller may rely on:

* the whole userinfo (``user:password@`` or a bare token ``token@``) becomes ``***@``: a user
  name can itself be the credential (``https://TOKEN:x-oauth-basic@github.com``). The userinfo
  ends at the LAST ``@`` before the host, so a password holding ``@``, ``:`` or even an
  unescaped ``/`` is masked whole, not cut at its first ``@``;
* an ssh user without a password (``ssh://git@host/...``) is kept: it is not a secret and helps
  the reader; ``git@host:path`` (scp syntax, no scheme) is returned unchanged;
* query (and fragment) parameters whose name looks like a credential (``api_key``, ``token``,
  ``password``, ``secret``, ``sig``, ``auth``, ...) keep their name and lose their value;
* anything else (scheme, host, port, path) is returned exactly as given.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["CREDENTIAL_PARAM", "mask_url", "mask_urls_in_text", "url_userinfo"]

MASK = "***"

CREDENTIAL_PARAM = re.compile(
    r"key|token|pass|pwd|secret|sig|auth|credential|session|cookie|jwt|bearer|code",
    re.IGNORECASE,
)
"""A query parameter whose (decoded) name contains one of these is taken for a credential."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HOSTPORT = r"(?:\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._~%!$&'()*+;=-]*)(?::[0-9]*)?"
_HOSTS = re.compile(rf"{_HOSTPORT}(?:,{_HOSTPORT})*")
"""One host[:port], or several comma-separated (NATS and PostgreSQL accept server lists)."""
_PARAM = re.compile(r"([^&;=#?]*)=([^&;#]*)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_SSH = ("ssh", "git+ssh", "ssh+git")


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` ending the userinfo in ``rest`` (the URL after ``scheme://``), or -1.

    The authority normally ends at the first ``/``, ``?`` or ``#``; its userinfo ends at the
    last ``@`` inside it. When what precedes that first delimiter is no host (``user:pa`` of a
    password holding an unescaped ``/``), the userinfo runs on to the first ``@`` that is
    followed by a host and the end of the authority.
    """
    end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    head = rest[:end]
    if "@" in head:
        return head.rfind("@")
    if "@" not in rest[end:] or _HOSTS.fullmatch(head):
        return -1
    for match in re.finditer("@", rest):
        after = _HOSTS.match(rest, match.end())
        if after is not None and (after.end() == len(rest) or rest[after.end()] in "/?#"):
            return match.start()
    return -1


def _mask_params(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if value and CREDENTIAL_PARAM.search(unquote_plus(name)):
            return f"{name}={MASK}"
        return match.group(0)

    return _PARAM.sub(one, text)


def mask_url(url: str) -> str:
    """``url`` without credentials: userinfo and credential-like parameters become ``***``.

    Never raises, whatever the input; text that is not a ``scheme://`` URL comes back as is.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    prefix, rest = url[: scheme.end()], url[scheme.end() :]
    at = _userinfo_end(rest)
    if at >= 0:
        userinfo = rest[:at]
        keep = prefix[:-3].lower() in _SSH and ":" not in userinfo
        rest = rest if keep else f"{MASK}{rest[at:]}"
        after_host = at + 1 if keep else len(MASK) + 1
    else:
        after_host = 0
    cut = next((i for i in range(after_host, len(rest)) if rest[i] in "?#"), -1)
    if cut < 0:
        return prefix + rest
    return prefix + rest[:cut] + _mask_params(rest[cut:])


def url_userinfo(url: str) -> str:
    """The raw ``user:password`` (or token) part of ``url``, as :func:`mask_url` finds it; ``""``
    when there is none."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return ""
    rest = url[scheme.end() :]
    at = _userinfo_end(rest)
    return rest[:at] if at >= 0 else ""


def mask_urls_in_text(text: str) -> str:
    """``text`` with :func:`mask_url` applied to every ``scheme://...`` URL in it.

    A URL ends at whitespace or a quote, so a password holding a space or a quote is not
    recognised here: callers also replace the secrets they know (see ``reconciler.secrets``).
    """
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
