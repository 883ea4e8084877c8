"""Running the bot: an HTTP server (bolt's WSGI adapter on a threaded stdlib server), Socket
Mode, and a worker that delivers the outbox and runs the deadline sweep on a timer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


class ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow request never delays another's ack."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Routes:
    """``POST /slack/events`` to bolt (signature verified there); ``GET /healthz``."""

    def __init__(self, app: App) -> None:
        self._slack = SlackRequestHandler(app, EVENTS_PATH)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return self._slack(environ, start_response)


def http_server(app: App, host: str = "127.0.0.1", port: int = 3000) -> ThreadingServer:
    """A server for ``app`` bound to ``host:port`` (port 0: any free port); call
    ``serve_forever()`` and, to stop, ``shutdown()`` then ``server_close()``."""
    server = make_server(
        host, port, _Routes(app), server_class=ThreadingServer, handler_class=QuietHandler
    )
    assert isinstance(server, ThreadingServer)
    return server


def socket_mode(app: App, app_token: str) -> SocketModeHandler:
    """A Socket Mode connection for ``app`` (``connect()`` to run in the background,
    ``start()`` to block); ``apps.connections.open`` goes to the app client's base URL."""
    return SocketModeHandler(app, app_token, web_client=app.client)


class OutboxWorker(threading.Thread):
    """Delivers pending notifications every ``deliver_every`` seconds and runs the deadline
    sweep every ``sweep_every`` seconds (0 turns either off). Both are safe to run from
    several processes at once: the outbox is claimed, each deadline is acted on once."""

    def __init__(
        self, flow: Flow, *, deliver_every: float = 5.0, sweep_every: float = 60.0
    ) -> None:
        super().__init__(name="iap-flow-outbox", daemon=True)
        self._flow = flow
        self._every = {"deliver": deliver_every, "sweep": sweep_every}
        self._halt = threading.Event()

    def run(self) -> None:
        last = {name: 0.0 for name in self._every}
        active = [every for every in self._every.values() if every > 0]
        if not active:
            return
        while not self._halt.wait(min(active)):
            now = time.monotonic()
            for name, every in self._every.items():
                if every > 0 and now - last[name] >= every:
                    last[name] = now
                    self._tick(name)

    def _tick(self, name: str) -> None:
        try:
            if name == "sweep":
                result = self._flow.sweep(SYSTEM)
                log.info("sweep: %s", result)
            else:
                self._flow.deliver_notifications(SYSTEM)
        except Exception:  # keep the worker alive; the next tick retries, the log says why
            log.exception("%s failed", name)

    def stop(self) -> None:
        """Stop after the current tick."""
        self._halt.set()
