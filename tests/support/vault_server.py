"""An in-process Vault HTTP API for tests: the endpoints reconciler uses, as Vault documents them.

No Vault server can be installed on the test machines, so :class:`FakeVault` serves the slice of
Vault's HTTP API that :mod:`reconciler.secrets.vault` (through the real ``hvac`` client) talks to,
over real HTTP on a free loopback port (stdlib ``ThreadingHTTPServer`` in a daemon thread):

- ``GET /v1/sys/health`` (200 active, 503 sealed; body with ``initialized``/``sealed``/``standby``)
- ``GET /v1/sys/mounts`` and ``GET /v1/sys/internal/ui/mounts/<path>`` (KV version detection)
- KV v1: ``GET /v1/<mount>/<path>`` (``lease_duration`` from a ``ttl`` key, else 768h)
- KV v2: ``GET /v1/<mount>/data/<path>[?version=N]`` and ``GET /v1/<mount>/metadata/<path>``;
  a soft-deleted or destroyed version answers 404 *with* its metadata, as Vault does
- ``POST /v1/auth/approle/login``, ``POST /v1/auth/kubernetes/login`` (``auth`` block with
  ``client_token``, ``lease_duration``, ``renewable``)
- ``GET /v1/auth/token/lookup-self``, ``POST /v1/auth/token/renew-self`` (bounded by max TTL)
- ``POST /v1/transit/encrypt/<key>`` / ``decrypt/<key>`` (base64 plaintext, ``vault:v1:``)

Errors use Vault's status codes and ``{"errors": [...]}`` bodies: 503 ``Vault is sealed``,
403 ``permission denied`` (missing, unknown, expired token or a path the policy does not
grant), 404 ``{"errors": []}`` for a missing secret, 400 for bad requests. Time is
``time.time() + offset`` so tests can :meth:`advance` the clock instead of sleeping. Every
request is appended to :attr:`FakeVault.requests` (method, path) for assertions on caching.

Policies are simplified to lists of ``fnmatch`` patterns over API paths (``secret/data/app/*``);
``auth/token/lookup-self`` and ``renew-self`` are always allowed (Vault's ``default`` policy).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KV1_DEFAULT_LEASE = 2764800  # Vault's default max lease TTL (768h), what KV v1 reads report


@dataclass
class Token:
    """A Vault token: its policy (as path patterns) and its lease."""

    id: str
    paths: list[str]
    ttl: int
    """Seconds the token lives from :attr:`issued` (or its last renewal); 0 never expires."""
    issued: float
    renewable: bool = True
    max_ttl: int = 0
    """Renewals never extend past ``created + max_ttl`` (0: no limit)."""
    created: float = 0.0
    accessor: str = field(default_factory=lambda: uuid.uuid4().hex)
    policies: list[str] = field(default_factory=lambda: ["default"])
    path: str = "auth/token/create"
    revoked: bool = False

    def expires(self) -> float | None:
        return None if self.ttl == 0 else self.issued + self.ttl


@dataclass
class KV2Version:
    data: dict[str, Any]
    created: str
    deletion_time: str = ""
    destroyed: bool = False


@dataclass
class Role:
    paths: list[str]
    token_ttl: int = 3600
    token_max_ttl: int = 0
    secret_id: str = ""
    jwts: set[str] = field(default_factory=set)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVault:
    """The state of the fake Vault plus the HTTP server serving it. Use as a context manager."""

    def __init__(self) -> None:
        self.sealed = False
        self.ui_mounts = True
        """False: ``sys/internal/ui/mounts/<path>`` answers 404, as Vault before 1.x did."""
        self.offset = 0.0
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.connections: list[socket.socket] = []
        self.namespaces: set[str] = set()
        """``X-Vault-Namespace`` headers seen (Enterprise namespaces; paths are not scoped)."""
        self.mounts: dict[str, dict[str, Any]] = {
            "secret/": {"type": "kv", "options": {"version": "2"}, "description": "kv v2"},
            "kv/": {"type": "kv", "options": {"version": "1"}, "description": "kv v1"},
            "transit/": {"type": "transit", "options": None, "description": "transit"},
        }
        self.kv1: dict[str, dict[str, Any]] = {}
        self.kv2: dict[str, list[KV2Version]] = {}
        self.tokens: dict[str, Token] = {}
        self.approle: dict[str, Role] = {}
        self.kubernetes: dict[str, Role] = {}
        self.transit: dict[str, bytes] = {}
        self.root_token = self.create_token(["*"], ttl=0, renewable=False)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up helpers (what `vault kv put`, `vault write auth/...` would do) -----------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move Vault's clock forward (token and lease expiry)."""
        self.offset += seconds

    def create_token(
        self, paths: list[str], *, ttl: int = 3600, renewable: bool = True, max_ttl: int = 0
    ) -> str:
        token_id = "hvs." + secrets.token_urlsafe(18)
        now = self.now()
        self.tokens[token_id] = Token(
            token_id, paths, ttl, now, renewable=renewable, max_ttl=max_ttl, created=now
        )
        return token_id

    def put_kv1(self, path: str, data: dict[str, Any]) -> None:
        self.kv1[path] = dict(data)

    def put_kv2(self, path: str, data: dict[str, Any]) -> int:
        versions = self.kv2.setdefault(path, [])
        versions.append(KV2Version(dict(data), _iso(self.now())))
        return len(versions)

    def delete_kv2_version(self, path: str, version: int) -> None:
        self.kv2[path][version - 1].deletion_time = _iso(self.now())

    def destroy_kv2_version(self, path: str, version: int) -> None:
        entry = self.kv2[path][version - 1]
        entry.destroyed, entry.data = True, {}

    def add_approle(self, role_id: str, secret_id: str, paths: list[str], **kw: Any) -> None:
        self.approle[role_id] = Role(paths, secret_id=secret_id, **kw)

    def add_kubernetes_role(self, role: str, jwt: str, paths: list[str], **kw: Any) -> None:
        self.kubernetes[role] = Role(paths, jwts={jwt}, **kw)

    def token_alive(self, token: str) -> bool:
        """Whether Vault would accept ``token`` now."""
        with self.lock:
            return self._token(token) is not None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p == path)

    # -- server ----------------------------------------------------------------------------------

    @property
    def addr(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address; typeshed allows bytes too
        return f"http://{host}:{port}"

    def start(self) -> FakeVault:
        vault = self

        class Handler(_Handler):
            state = vault

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open (keep-alive) connection: Vault is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            connections, self.connections = self.connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called with the lock held) ---------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, token: str | None
    ) -> tuple[int, Any]:
        self.requests.append((method, path))
        if path == "sys/health":
            return self._health()
        if self.sealed:
            return 503, {"errors": ["Vault is sealed"]}
        if method == "POST" and path == "auth/approle/login":
            return self._approle_login(body)
        if method == "POST" and path == "auth/kubernetes/login":
            return self._kubernetes_login(body)
        if path.startswith("sys/internal/ui/mounts/") and not self.ui_mounts:
            return 404, {"errors": []}
        current = self._token(token)
        if current is None:
            return 403, {"errors": ["permission denied"]}
        if path == "auth/token/lookup-self" and method == "GET":
            return 200, self._envelope(data=self._lookup(current))
        if path == "auth/token/renew-self" and method == "POST":
            return self._renew(current, body)
        if not any(fnmatch(path, pattern) for pattern in current.paths):
            if path.startswith("sys/internal/ui/mounts/"):
                target = path.removeprefix("sys/internal/ui/mounts/")
                if any(fnmatch(p, pat) for p in self._api_paths(target) for pat in current.paths):
                    return self._ui_mount(target)
                return 403, {
                    "errors": [
                        "preflight capability check returned 403, please ensure client's "
                        f'policies grant access to path "{target}"'
                    ]
                }
            return 403, {"errors": ["permission denied"]}
        if path == "sys/mounts" and method == "GET":
            mounts = {k: self._mount_info(k) for k in self.mounts}
            return 200, {**mounts, **self._envelope(data=mounts)}
        if path.startswith("sys/internal/ui/mounts/"):
            return self._ui_mount(path.removeprefix("sys/internal/ui/mounts/"))
        mount = self._mount_of(path)
        if mount is None:
            return 404, {"errors": [f"no handler for route {path!r}. route entry not found."]}
        kind = self.mounts[mount]
        rest = path[len(mount) :]
        if kind["type"] == "transit" and method == "POST":
            return self._transit(rest, body)
        if kind["type"] == "kv" and method == "GET":
            if kind["options"] and kind["options"].get("version") == "2":
                return self._kv2(mount, rest, query)
            return self._kv1(mount + rest)
        if kind["type"] == "kv" and method in ("POST", "PUT"):
            return self._kv_write(mount, rest, body, kind)
        return 405, {"errors": [f"unsupported operation on {path}"]}

    def _envelope(self, **parts: Any) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": None,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
            **parts,
        }

    def _health(self) -> tuple[int, Any]:
        body = {
            "initialized": True,
            "sealed": self.sealed,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(self.now()),
            "version": "1.17.0",
            "cluster_name": "vault-cluster-test",
            "cluster_id": "00000000-0000-0000-0000-000000000000",
        }
        return (503 if self.sealed else 200), body

    def _token(self, token: str | None) -> Token | None:
        found = self.tokens.get(token or "")
        if found is None or found.revoked:
            return None
        expires = found.expires()
        if expires is not None and self.now() >= expires:
            return None
        return found

    def _lookup(self, tok: Token) -> dict[str, Any]:
        expires = tok.expires()
        return {
            "accessor": tok.accessor,
            "creation_time": int(tok.created),
            "creation_ttl": tok.ttl,
            "display_name": "token",
            "entity_id": "",
            "expire_time": None if expires is None else _iso(expires),
            "explicit_max_ttl": tok.max_ttl,
            "id": tok.id,
            "issue_time": _iso(tok.created),
            "meta": None,
            "num_uses": 0,
            "orphan": False,
            "path": tok.path,
            "policies": tok.policies,
            "renewable": tok.renewable,
            "ttl": 0 if expires is None else max(0, int(expires - self.now())),
            "type": "service",
        }

    def _auth(self, tok: Token, **metadata: str) -> dict[str, Any]:
        return self._envelope(
            auth={
                "client_token": tok.id,
                "accessor": tok.accessor,
                "policies": tok.policies,
                "token_policies": tok.policies,
                "metadata": metadata or None,
                "lease_duration": tok.ttl,
                "renewable": tok.renewable,
                "entity_id": "",
                "token_type": "service",
                "orphan": True,
            }
        )

    def _login(self, spec: Role, path: str, **metadata: str) -> tuple[int, Any]:
        token_id = self.create_token(
            spec.paths, ttl=spec.token_ttl, renewable=True, max_ttl=spec.token_max_ttl
        )
        tok = self.tokens[token_id]
        tok.path, tok.policies = path, ["default", "reconciler"]
        return 200, self._auth(tok, **metadata)

    def _approle_login(self, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        role = self.approle.get(str(body.get("role_id", "")))
        if role is None or not hmac.compare_digest(role.secret_id, str(body.get("secret_id", ""))):
            return 400, {"errors": ["invalid role or secret ID"]}
        return self._login(role, "auth/approle/login", role_name="reconciler")

    def _kubernetes_login(self, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        name = str(body.get("role", ""))
        role = self.kubernetes.get(name)
        if role is None:
            return 400, {"errors": [f'invalid role name "{name}"']}
        if str(body.get("jwt", "")) not in role.jwts:
            return 403, {"errors": ["permission denied"]}
        return self._login(role, "auth/kubernetes/login", role=name)

    def _renew(self, tok: Token, body: Any) -> tuple[int, Any]:
        if not tok.renewable:
            return 400, {"errors": ["lease is not renewable"]}
        increment = _seconds((body or {}).get("increment")) if isinstance(body, dict) else None
        ttl = increment or tok.ttl
        now = self.now()
        if tok.max_ttl:
            ttl = min(ttl, int(tok.created + tok.max_ttl - now))
        tok.issued, tok.ttl = now, max(ttl, 1)
        return 200, self._auth(tok)

    def _mount_of(self, path: str) -> str | None:
        matches = [m for m in self.mounts if (path + "/").startswith(m)]
        return max(matches, key=len) if matches else None

    def _mount_info(self, mount: str) -> dict[str, Any]:
        info = self.mounts[mount]
        return {
            "accessor": f"{info['type']}_{hashlib.sha1(mount.encode()).hexdigest()[:8]}",
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
            "description": info["description"],
            "external_entropy_access": False,
            "local": False,
            "options": info["options"],
            "plugin_version": "",
            "running_plugin_version": "",
            "seal_wrap": False,
            "type": info["type"],
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, mount)),
        }

    def _api_paths(self, target: str) -> list[str]:
        """The API paths a policy would have to grant for a KV path under ``target``."""
        mount = self._mount_of(target)
        if mount is None:
            return [target]
        rest = target[len(mount) :]
        return [target, f"{mount}data/{rest}", f"{mount}metadata/{rest}"]

    def _ui_mount(self, target: str) -> tuple[int, Any]:
        mount = self._mount_of(target)
        if mount is None:
            return 403, {
                "errors": [
                    "preflight capability check returned 403, please ensure client's policies "
                    f'grant access to path "{target}"'
                ]
            }
        return 200, self._envelope(data={"path": mount, **self._mount_info(mount)})

    def _kv1(self, path: str) -> tuple[int, Any]:
        data = self.kv1.get(path)
        if data is None:
            return 404, {"errors": []}
        lease = _seconds(data.get("ttl")) or KV1_DEFAULT_LEASE
        return 200, self._envelope(data=dict(data), lease_duration=lease)

    def _kv2(self, mount: str, rest: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        kind, _, sub = rest.partition("/")
        versions = self.kv2.get(mount + sub)
        if kind == "metadata":
            if not versions:
                return 404, {"errors": []}
            return 200, self._envelope(
                data={
                    "cas_required": False,
                    "created_time": versions[0].created,
                    "current_version": len(versions),
                    "custom_metadata": None,
                    "delete_version_after": "0s",
                    "max_versions": 0,
                    "oldest_version": 0,
                    "updated_time": versions[-1].created,
                    "versions": {
                        str(i): {
                            "created_time": v.created,
                            "deletion_time": v.deletion_time,
                            "destroyed": v.destroyed,
                        }
                        for i, v in enumerate(versions, 1)
                    },
                }
            )
        if kind != "data":
            return 404, {"errors": [f"no handler for route {mount + rest!r}"]}
        if not versions:
            return 404, {"errors": []}
        wanted = int(query.get("version", ["0"])[0] or 0) or len(versions)
        if wanted > len(versions):
            return 404, {"errors": []}
        entry = versions[wanted - 1]
        metadata = {
            "created_time": entry.created,
            "custom_metadata": None,
            "deletion_time": entry.deletion_time,
            "destroyed": entry.destroyed,
            "version": wanted,
        }
        if entry.deletion_time or entry.destroyed:
            return 404, self._envelope(data={"data": None, "metadata": metadata})
        return 200, self._envelope(data={"data": dict(entry.data), "metadata": metadata})

    def _kv_write(self, mount: str, rest: str, body: Any, kind: dict[str, Any]) -> tuple[int, Any]:
        """KV writes (``vault kv put``): v2 ``data/<path>`` with ``{data, options.cas}``; v1."""
        body = body if isinstance(body, dict) else {}
        if not (kind["options"] and kind["options"].get("version") == "2"):
            self.put_kv1(mount + rest, body)
            return 200, self._envelope()
        sub_kind, _, sub = rest.partition("/")
        if sub_kind != "data" or not isinstance(body.get("data"), dict):
            return 400, {"errors": ["no data provided"]}
        cas = (body.get("options") or {}).get("cas")
        current = len(self.kv2.get(mount + sub, []))
        if cas is not None and int(cas) != current:
            return 400, {"errors": ["check-and-set parameter did not match the current version"]}
        version = self.put_kv2(mount + sub, body["data"])
        entry = self.kv2[mount + sub][version - 1]
        return 200, self._envelope(
            data={
                "created_time": entry.created,
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": version,
            }
        )

    def _transit(self, rest: str, body: Any) -> tuple[int, Any]:
        op, _, name = rest.partition("/")
        body = body if isinstance(body, dict) else {}
        if op == "encrypt":
            key = self.transit.setdefault(name, secrets.token_bytes(32))  # upsert, as Vault
            try:
                plaintext = base64.b64decode(str(body.get("plaintext", "")), validate=True)
            except ValueError:
                return 400, {"errors": ["failed to base64-decode plaintext"]}
            nonce = secrets.token_bytes(12)
            sealed = _xor(plaintext, _stream(key, nonce, len(plaintext)))
            tag = hmac.new(key, nonce + sealed, hashlib.sha256).digest()[:16]
            blob = base64.b64encode(nonce + sealed + tag).decode()
            return 200, self._envelope(data={"ciphertext": f"vault:v1:{blob}", "key_version": 1})
        if op == "decrypt":
            key_or_none = self.transit.get(name)
            if key_or_none is None:
                return 400, {"errors": ["encryption key not found"]}
            ciphertext = str(body.get("ciphertext", ""))
            if not ciphertext.startswith("vault:v1:"):
                return 400, {"errors": ["invalid ciphertext: no prefix"]}
            try:
                raw = base64.b64decode(ciphertext.removeprefix("vault:v1:"), validate=True)
            except ValueError:
                return 400, {"errors": ["invalid ciphertext: could not decode"]}
            nonce, sealed, tag = raw[:12], raw[12:-16], raw[-16:]
            expected = hmac.new(key_or_none, nonce + sealed, hashlib.sha256).digest()[:16]
            if len(raw) < 28 or not hmac.compare_digest(tag, expected):
                return 400, {"errors": ["cipher: message authentication failed"]}
            plain = _xor(sealed, _stream(key_or_none, nonce, len(sealed)))
            return 200, self._envelope(data={"plaintext": base64.b64encode(plain).decode()})
        return 405, {"errors": [f"unsupported transit operation {op!r}"]}


def _seconds(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(key + nonce + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


class _Handler(BaseHTTPRequestHandler):
    state: FakeVault
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.append(self.connection)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(400, {"errors": ["failed to parse JSON input"]})
            return
        if not url.path.startswith("/v1/"):
            self._send(404, {"errors": []})
            return
        with self.state.lock:
            if namespace := self.headers.get("X-Vault-Namespace"):
                self.state.namespaces.add(namespace)
            status, payload = self.state.handle(
                method,
                url.path.removeprefix("/v1/").rstrip("/"),
                parse_qs(url.query),
                body,
                self.headers.get("X-Vault-Token"),
            )
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("POST")
