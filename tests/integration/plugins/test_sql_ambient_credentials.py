"""A workflow's PostgreSQL DSN logs in with what it says, never with the daemon's credentials.

libpq fills in what a connection string leaves out from the process: ``PGPASSWORD``,
``~/.pgpass`` (or ``PGPASSFILE``). Those belong to the daemon (its store), so a committer who
names a server without a password must not be sent the daemon's. A small server on loopback
speaks just enough of the PostgreSQL protocol to ask for a clear-text password and record it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reconciler_plugins.sql import SqlQuery, SqlQueryRequest

from reconciler.errors import ActionError
from tests.integration.plugins.conftest import ContextFactory

DAEMON_PASSWORD = "canary-daemon-pgpassword-6b1f"


class PasswordTrap:
    """Answers SSL/GSS requests with 'N', asks for a clear-text password, records it."""

    def __init__(self) -> None:
        self.passwords: list[str] = []
        self.asked = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                body = await reader.readexactly(length - 4)
                (code,) = struct.unpack("!i", body[:4])
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            await writer.drain()
            kind = await reader.readexactly(1)
            if kind == b"p":
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                self.passwords.append((await reader.readexactly(length - 4)).rstrip(b"\0").decode())
            message = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + struct.pack("!i", len(message) + 4) + message)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.asked.set()
            writer.close()


@pytest.fixture
async def trap() -> AsyncIterator[tuple[PasswordTrap, int]]:
    catcher = PasswordTrap()
    server = await asyncio.start_server(catcher.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield catcher, port
    finally:
        server.close()
        await server.wait_closed()


async def refused_by_the_server(dsn: str, make_context: ContextFactory) -> None:
    """``select 1`` on ``dsn`` fails (the trap refuses every login, having noted the password)."""
    query = SqlQuery()
    try:
        with pytest.raises(ActionError):
            await query.run(
                SqlQueryRequest.model_validate({"dsn": dsn, "query": "select 1"}), make_context()
            )
    finally:
        await query.close()


@pytest.mark.parametrize("source", ["PGPASSWORD", "PGPASSFILE"])
async def test_a_dsn_without_a_password_is_not_sent_the_daemons(
    trap: tuple[PasswordTrap, int],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
) -> None:
    catcher, port = trap
    if source == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", DAEMON_PASSWORD)
    else:
        passfile = tmp_path.parent / "daemon.pgpass"
        passfile.write_text(f"*:*:*:*:{DAEMON_PASSWORD}\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
    await refused_by_the_server(f"postgresql://postgres@127.0.0.1:{port}/test", make_context)
    assert DAEMON_PASSWORD not in catcher.passwords


async def test_a_dsn_with_its_own_password_still_sends_it(
    trap: tuple[PasswordTrap, int],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catcher, port = trap
    monkeypatch.setenv("PGPASSWORD", DAEMON_PASSWORD)
    await refused_by_the_server(f"postgresql://app:own-pw@127.0.0.1:{port}/test", make_context)
    assert catcher.passwords == ["own-pw"]
