"""What the App Store and Google Play end-to-end tests share: how they look at a flow, and
how they post to a webhook endpoint served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from iap_flow import SYSTEM, Flow, Order
from iap_flow.adapters.notifiers import MemoryNotifier


class PlatformEnv:
    """A flow fed by a store's notifications; subclasses build ``flow`` and ``notifier``."""

    flow: Flow
    notifier: MemoryNotifier

    def order(self, order_id: str) -> Order:
        return self.flow.orders.get(SYSTEM, order_id)

    def topics(self, recipient: str) -> list[str]:
        return [n.topic for n in self.notifier.to(recipient)]

    def events(self, subject_id: str) -> list[str]:
        return [e.event for e in self.flow.history(SYSTEM, subject_id)]

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table: compared before and after to show nothing changed."""
        db = self.flow.store.db  # type: ignore[attr-defined]
        return {
            t: sorted(repr(tuple(r)) for r in db.execute(f"SELECT * FROM [{t}]").fetchall())
            for t in db.table_names()
        }


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def post_json(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, str | None]:
    """POST ``body`` as JSON; the HTTP status and the endpoint's ``outcome``."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())["outcome"]
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each kind: a SQLite file, a fresh PostgreSQL schema
    (``IAP_FLOW_TEST_POSTGRES_URL``; dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'flow.db'}"
        return
    base = os.environ.get("IAP_FLOW_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("IAP_FLOW_TEST_POSTGRES_URL is not set: the PostgreSQL run needs a server")
    import psycopg

    schema = f"test_platform_{uuid.uuid4().hex[:12]}"
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def serving(app: Callable[[dict[str, Any], Any], Iterable[bytes]]) -> Iterator[str]:
    """Serve a WSGI webhook endpoint on 127.0.0.1 for the block; yields its URL."""
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
