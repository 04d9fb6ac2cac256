"""Conditional reads: JSON answers with an ``ETag``, ``304 Not Modified`` when the client has it.

The page redraws every few seconds from the workflow list and the open workflow's detail; at a
thousand workflows the list is hundreds of kilobytes and almost never changes between two
refreshes. :func:`conditional_json` lets a read route answer with the body's hash as a strong
``ETag`` and, when the request's ``If-None-Match`` names that tag already, with an empty
``304`` instead of the body. Called by the read routes of :mod:`reconciler.api.routes.workflows`.

What callers may rely on: the tag is a function of the exact bytes of the body (the same answer
always has the same tag, any change of a byte changes it); the answer carries
``Cache-Control: no-cache`` so a cache always asks again; a ``304`` carries the same ``ETag``
and no body.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response
from pydantic import BaseModel

NOT_MODIFIED: dict[int | str, dict[str, str]] = {
    304: {
        "description": "Not Modified: the `If-None-Match` of the request names the current `ETag`."
    }
}
"""The ``responses`` entry of a route answering through :func:`conditional_json`."""


def entity_tag(body: bytes) -> str:
    """The strong entity tag (quoted) of ``body``."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def names_tag(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header value matches ``tag`` (weak comparison, as RFC 9110
    asks of ``If-None-Match``; ``*`` matches any current representation)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def conditional_json(request: Request, body: BaseModel) -> Response:
    """``body`` as JSON with its ``ETag``, or ``304`` when ``request`` already has that tag."""
    payload = body.model_dump_json().encode()
    tag = entity_tag(payload)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if names_tag(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type="application/json", headers=headers)
