"""schemathesis against the live daemon's own ``/openapi.json``: for every operation, generated
requests (with the token, so mutations get past auth) never produce a server error, and every
answer conforms to the schema — status code, content type and body.

The daemon runs in a thread with its own event loop for the whole module, because schemathesis
drives its requests synchronously.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import TOKEN, start_daemon

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a daemon serving the API, running in a background thread."""
    urls: queue.Queue[str | BaseException] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async for daemon in start_daemon(tmp_path_factory.mktemp("schema")):
                urls.put(daemon.url)
                await stop.wait()
        except BaseException as exc:  # surface a start-up failure in the test, not the thread
            urls.put(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    url = urls.get(timeout=60)
    if isinstance(url, BaseException):
        raise url
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        loop.close()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_server_errors_and_every_answer_matches_the_schema(live_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        call()
