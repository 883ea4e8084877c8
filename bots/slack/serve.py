"""Running the bot: HTTP under uvicorn (bolt's ASGI adapter, each request dispatched on a
worker thread), Socket Mode, and a worker that delivers the outbox, runs the deadline sweep
and brings changed cards in step, on timers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.asgi import SlackRequestHandler
from slack_bolt.adapter.asgi.http_request import AsgiHttpRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow

from .notifier import CardKeeper

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ThreadedSlackHandler(SlackRequestHandler):
    """bolt's ASGI adapter for a sync ``App``, dispatching on a worker thread so that one
    request's listener never holds up the event loop (and every other request's ack)."""

    async def dispatch(self, request: AsgiHttpRequest) -> BoltResponse:
        bolt_request = BoltRequest(
            body=await request.get_raw_body(),
            query=request.query_string,
            headers=request.get_headers(),
        )
        return await asyncio.to_thread(self.app.dispatch, bolt_request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HEALTH_PATH:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok\n"})
            return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


class HttpServer:
    """``POST /slack/events`` and ``GET /healthz`` under uvicorn: keep-alive timeout, a cap
    on concurrent connections, and a graceful shutdown that lets requests in flight finish."""

    def __init__(
        self, app: App, host: str = "127.0.0.1", port: int = 3000, *, log_level: str = "warning"
    ) -> None:
        self.config = uvicorn.Config(
            ThreadedSlackHandler(app, EVENTS_PATH),
            host=host,
            port=port,
            lifespan="off",
            log_level=log_level.lower(),
            access_log=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            limit_concurrency=256,
            backlog=256,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after start; useful with port 0)."""
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening")

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's handlers), then drain and return."""
        self.server.run()

    def start(self, timeout: float = 10.0) -> HttpServer:
        """Serve on a background thread; returns once listening."""
        self._thread = threading.Thread(target=self.server.run, name="iap-slack-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Slack HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Graceful shutdown of a server started with :meth:`start`."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)


def http_server(app: App, host: str = "127.0.0.1", port: int = 3000) -> HttpServer:
    """The production HTTP server for ``app`` (``run()`` to block, ``start()``/``stop()``)."""
    return HttpServer(app, host, port)


def socket_mode(app: App, app_token: str) -> SocketModeHandler:
    """A Socket Mode connection for ``app`` (``connect()`` to run in the background,
    ``start()`` to block); ``apps.connections.open`` goes to the app client's base URL."""
    return SocketModeHandler(app, app_token, web_client=app.client)


class OutboxWorker(threading.Thread):
    """Delivers pending notifications every ``deliver_every`` seconds (bringing changed cards
    in step right after), and runs the deadline sweep every ``sweep_every`` seconds (0 turns
    either off). Safe from several processes at once: the outbox is claimed, each deadline
    acted on once. The first delivery runs at start: what waited while the bot was down."""

    def __init__(
        self,
        flow: Flow,
        *,
        deliver_every: float = 5.0,
        sweep_every: float = 60.0,
        keeper: CardKeeper | None = None,
    ) -> None:
        super().__init__(name="iap-flow-outbox", daemon=True)
        self._flow = flow
        self._keeper = keeper
        self._every = {"deliver": deliver_every, "sweep": sweep_every}
        self._halt = threading.Event()

    def run(self) -> None:
        active = [every for every in self._every.values() if every > 0]
        if not active:
            return
        last = {name: float("-inf") for name in self._every}
        while True:
            now = time.monotonic()
            for name, every in self._every.items():
                if every > 0 and now - last[name] >= every:
                    last[name] = now
                    self._tick(name)
            if self._halt.wait(min(active)):
                return

    def _tick(self, name: str) -> None:
        try:
            if name == "sweep":
                result = self._flow.sweep(SYSTEM)
                log.info("sweep: %s", result)
            else:
                self._flow.deliver_notifications(SYSTEM)
                if self._keeper is not None:
                    self._keeper.refresh_changed()
        except Exception:  # keep the worker alive; the next tick retries, the log says why
            log.exception("%s failed", name)

    def stop(self) -> None:
        """Stop after the current tick."""
        self._halt.set()
