"""``iap-flow webhooks``: the store notification endpoints, served under uvicorn, on the flow
the configuration describes.

``POST /google-play?token=...`` takes Pub/Sub pushes of Google Play real-time developer
notifications (``[platforms.google_play]`` with ``push_service_account``, ``push_audience``,
``push_token`` and ``subscription``; each push's OIDC token is verified);
``POST /app-store`` takes App Store Server Notifications V2 (``[platforms.app_store]``);
``GET /healthz`` answers ``ok``. Each is mounted only if its platform is configured.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from iap_flow import observability
from iap_flow.config import Config, open_flow_from_config
from iap_flow.config_platforms import store_notifications
from iap_flow.domain.errors import InvalidInput
from iap_flow.flow import Flow

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PATHS = {"google_play": "/google-play", "app_store": "/app-store"}


def webhook_app(flow: Flow, config: Config, platforms: list[Any]) -> WsgiApp:
    """One WSGI app routing each configured store's endpoint to its ingest."""
    routes: dict[str, WsgiApp] = {
        PATHS[name]: notes.wsgi_app()
        for name, notes in store_notifications(flow, config, platforms).items()
    }
    if not routes:
        raise InvalidInput(
            "no store platform is configured: add [platforms.google_play] or [platforms.app_store]"
        )

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        route = routes.get(path.rstrip("/"))
        if route is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"no such endpoint\n"]
        return route(environ, start_response)

    return app


@click.command("webhooks", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--log-level", default="INFO", show_default=True, envvar="IAP_FLOW_LOG_LEVEL")
@click.pass_obj
def webhooks(settings: Any, host: str, port: int, log_level: str) -> None:
    """Serve the App Store / Google Play notification endpoints (until SIGTERM)."""
    import uvicorn

    try:
        observability.set_level(log_level)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-level") from exc
    config = settings.configured()
    table = config.section("webhooks").only("host", "port")
    ctx = click.get_current_context()
    if ctx.get_parameter_source("host") is click.core.ParameterSource.DEFAULT:
        host = table.text("host") or host
    if ctx.get_parameter_source("port") is click.core.ParameterSource.DEFAULT:
        port = table.integer("port", port)
    platforms = config.platforms()
    flow = open_flow_from_config(config, platforms=platforms, url=settings.url)
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                webhook_app(flow, config, platforms),
                interface="wsgi",
                host=host,
                port=port,
                lifespan="off",
                log_level="warning",
                timeout_keep_alive=5,
                timeout_graceful_shutdown=10,
            )
        )

        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        thread = threading.Thread(target=server.run, name="iap-webhooks", daemon=True)
        thread.start()  # off the main thread, uvicorn leaves the signals to us
        while not server.started:
            if not thread.is_alive():
                raise click.ClickException("the webhook server did not start")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        click.echo(f"iap-flow webhooks: listening on http://{host}:{bound}/", err=True)
        stopped.wait()
        server.should_exit = True  # graceful: requests in flight finish
        thread.join(15)
        click.echo("iap-flow webhooks: stopped", err=True)
    finally:
        flow.close()
