"""An in-process fake of the endpoints notification providers talk to, over real HTTP.

Slack, Teams, GitHub and GitLab cannot run here, so :class:`FakeNotifyServer` serves, on a free
loopback port (stdlib ``ThreadingHTTPServer`` in a daemon thread), the one endpoint each
provider uses, answering as the real service documents it:

- ``POST /slack/<token>``: Slack incoming webhook; ``200 ok``, ``404 no_service`` for an unknown
  token, ``400 invalid_payload`` without ``text``;
- ``POST /teams/<id>``: Teams workflow webhook; ``202`` for a ``message`` with an Adaptive Card
  attachment, ``400`` otherwise;
- ``POST /hook``: a receiver of the generic webhook that checks ``X-Reconciler-Signature``
  against :attr:`hmac_key` (``401`` when wrong or missing);
- ``POST /repos/<owner>/<repo>/statuses/<sha>`` (also under ``/api/v3`` for GitHub Enterprise):
  ``Authorization: Bearer <token>`` must equal :attr:`token` (``401`` otherwise), ``422`` for
  an unknown state, ``201`` with the status;
- ``POST /api/v4/projects/<id>/statuses/<sha>``: ``PRIVATE-TOKEN`` must equal :attr:`token`.
- Pull request comments, kept in :attr:`comments` by thread: GitHub's issue comments
  (``GET``/``POST /repos/<owner>/<repo>/issues/<n>/comments``,
  ``PATCH /repos/<owner>/<repo>/issues/comments/<id>``) and GitLab's merge request notes
  (``GET``/``POST /api/v4/projects/<id>/merge_requests/<iid>/notes``, ``PUT .../notes/<id>``),
  with the same token checks; a comment is ``{"id", "body"}``.

:meth:`script` makes the next requests to a path prefix answer given statuses (with
``Retry-After``), or stall past the client's timeout. Every request that reached an endpoint is
kept in :attr:`received` (path, headers, JSON body); :meth:`wait_for` polls for a count.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GITHUB_STATES = {"error", "failure", "pending", "success"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
_GITHUB_THREAD = re.compile(r"^(?:/api/v3)?/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
_GITHUB_COMMENT = re.compile(r"^(?:/api/v3)?/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
_GITLAB_THREAD = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes(?:/(\d+))?$")


@dataclass
class Received:
    """One request an endpoint accepted or refused (header names in lower case)."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int
    method: str = "POST"


@dataclass
class _Scripted:
    status: int
    retry_after: str | None = None
    stall: float = 0.0


@dataclass
class FakeNotifyServer:
    token: str = "s3cret-token"
    slack_token: str = "T000/B000/XXXX"
    hmac_key: str = "hook-key"
    received: list[Received] = field(default_factory=list)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _next_comment: int = 1000
    _scripts: dict[str, list[_Scripted]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def script(
        self, prefix: str, *statuses: int, retry_after: str | None = None, stall: float = 0.0
    ) -> None:
        """The next requests to paths starting with ``prefix`` answer ``statuses`` in order
        (``stall``: after waiting that long, past the client's timeout)."""
        with self._lock:
            self._scripts.setdefault(prefix, []).extend(
                _Scripted(s, retry_after, stall) for s in statuses
            )

    def requests_to(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def wait_for(self, prefix: str, count: int, *, timeout: float = 30.0) -> list[Received]:
        """Poll until ``count`` requests to ``prefix`` arrived (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests_to(prefix)
            if len(found) >= count:
                return found
            time.sleep(0.02)  # polling for the other process's requests
        raise AssertionError(
            f"{len(self.requests_to(prefix))} requests to {prefix}, wanted {count}"
        )

    # -- serving -------------------------------------------------------------------------------

    def start(self) -> FakeNotifyServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body, extra = fake.handle(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, raw, method=method
                )
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeNotifyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes, *, method: str = "POST"
    ) -> tuple[int, Any, dict[str, str]]:
        scripted = self._next_script(path)
        if scripted is not None:
            self._record(path, headers, raw, scripted.status, method)  # on arrival: may stall
            if scripted.stall:
                time.sleep(scripted.stall)  # stands for a server slower than the timeout
            extra = {"Retry-After": scripted.retry_after} if scripted.retry_after else {}
            return scripted.status, {"message": "scripted"}, extra
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        comment = self._comments(method, path, headers, body)
        status, answer = comment or self._route(path, headers, raw, body)
        self._record(path, headers, raw, status, method)
        return status, answer, {}

    def comments_on(self, thread: str) -> list[dict[str, Any]]:
        """The comments of a thread (``github:<owner>/<repo>#<n>`` or ``gitlab:<id>!<iid>``)."""
        with self._lock:
            return [dict(c) for c in self.comments.get(thread, [])]

    def _comments(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any] | None:
        bare = path.split("?", 1)[0]
        if m := _GITHUB_THREAD.match(bare):
            thread, one, ok = f"github:{m[1]}#{m[2]}", None, self._github_token(headers)
        elif m := _GITHUB_COMMENT.match(bare):
            thread, one, ok = f"github:{m[1]}#", int(m[2]), self._github_token(headers)
        elif m := _GITLAB_THREAD.match(bare):
            thread, one = f"gitlab:{m[1]}!{m[2]}", int(m[3]) if m[3] else None
            ok = headers.get("private-token") == self.token
        else:
            return None
        if not ok:
            return 401, {"message": "Bad credentials"}
        with self._lock:
            if one is None and method == "GET":
                return 200, list(self.comments.get(thread, []))
            if one is None and method == "POST" and isinstance(body, dict):
                self._next_comment += 1
                made = {"id": self._next_comment, "body": body.get("body", "")}
                self.comments.setdefault(thread, []).append(made)
                return 201, made
            if one is not None and method in {"PATCH", "PUT"} and isinstance(body, dict):
                for name, items in self.comments.items():
                    for item in items:
                        if item["id"] == one and name.startswith(thread):
                            item["body"] = body.get("body", "")
                            return 200, item
                return 404, {"message": "Not Found"}
        return 405, {"message": "Method Not Allowed"}

    def _github_token(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def _route(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        endpoints: list[tuple[Callable[[str], bool], Callable[[], tuple[int, Any]]]] = [
            (lambda p: p.startswith("/slack/"), lambda: self._slack(path, body)),
            (lambda p: p.startswith("/teams/"), lambda: self._teams(body)),
            (lambda p: p == "/hook", lambda: self._hook(headers, raw)),
            (lambda p: "/repos/" in p and "/statuses/" in p, lambda: self._github(headers, body)),
            (lambda p: p.startswith("/api/v4/projects/"), lambda: self._gitlab(headers, body)),
        ]
        for match, answer in endpoints:
            if match(path):
                return answer()
        return 404, {"message": "Not Found"}

    def _slack(self, path: str, body: Any) -> tuple[int, Any]:
        if path.removeprefix("/slack/") != self.slack_token:
            return 404, b"no_service"
        if not isinstance(body, dict) or not body.get("text"):
            return 400, b"invalid_payload"
        return 200, b"ok"

    def _teams(self, body: Any) -> tuple[int, Any]:
        try:
            card = body["attachments"][0]
            ok = body["type"] == "message" and card["content"]["type"] == "AdaptiveCard"
        except (KeyError, IndexError, TypeError):
            ok = False
        return (202, b"") if ok else (400, {"error": "not an adaptive card message"})

    def _hook(self, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        stamp = headers.get("x-reconciler-timestamp", "")
        mac = hmac.new(self.hmac_key.encode(), stamp.encode() + b"." + raw, hashlib.sha256)
        if headers.get("x-reconciler-signature") != "sha256=" + mac.hexdigest():
            return 401, {"error": "bad signature"}
        return 204, b""

    def _github(self, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        if not isinstance(body, dict) or body.get("state") not in GITHUB_STATES:
            return 422, {"message": "Validation Failed"}
        return 201, {"state": body["state"], "context": body.get("context", "default")}

    def _gitlab(self, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("private-token") != self.token:
            return 401, {"message": "401 Unauthorized"}
        if not isinstance(body, dict) or body.get("state") not in GITLAB_STATES:
            return 400, {"message": "state is missing"}
        return 201, {"status": body["state"], "name": body.get("name")}

    def _next_script(self, path: str) -> _Scripted | None:
        with self._lock:
            for prefix, queue in self._scripts.items():
                if path.startswith(prefix) and queue:
                    return queue.pop(0)
        return None

    def _record(
        self, path: str, headers: dict[str, str], raw: bytes, status: int, method: str = "POST"
    ) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.received.append(Received(path, headers, body, raw, status, method))
