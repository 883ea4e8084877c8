"""``iap-flow slack``: run the bot in Socket Mode (app-level token) or over HTTP (signing secret).

Configuration comes from environment variables (see :mod:`.config` and the README); the store
from ``--db`` / ``IAP_FLOW_DB`` like every other ``iap-flow`` command. The process also
delivers the outbox (staff notifications to the review channel, buyers' to a JSON-lines file)
and runs the deadline sweep on a timer, unless turned off.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType

import click

from iap_flow.domain.errors import IapFlowError


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("slack", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="IAP_FLOW_DB",
    default=None,
    help="Store URL or SQLite file (default: the iap-flow group's --db).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "socket", "http"]),
    default="auto",
    show_default=True,
    envvar="IAP_FLOW_SLACK_MODE",
    help="auto: Socket Mode if SLACK_APP_TOKEN is set, else HTTP.",
)
@click.option("--host", default="0.0.0.0", show_default=True, envvar="IAP_FLOW_SLACK_HOST")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=3000, show_default=True, envvar="PORT"
)
@click.option(
    "--deliver-every",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds between outbox deliveries (0: off).",
)
@click.option(
    "--sweep-every",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Seconds between deadline sweeps (0: off, e.g. when cron runs `iap-flow sweep`).",
)
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON-lines file for buyers' notifications (default: next to the database).",
)
@click.option(
    "--audience",
    "audiences",
    type=click.Choice(["buyer", "staff"]),
    multiple=True,
    default=("buyer", "staff"),
    show_default=True,
    envvar="IAP_FLOW_SLACK_AUDIENCES",
    help="Whose notifications this bot delivers. Use `--audience staff` when your app "
    "backend delivers the buyers' (it opens its flow with audiences=['buyer']).",
)
@click.option("--log-level", default="INFO", show_default=True, envvar="IAP_FLOW_LOG_LEVEL")
@click.pass_context
def command(
    ctx: click.Context,
    db: str | None,
    mode: str,
    host: str,
    port: int,
    deliver_every: float,
    sweep_every: float,
    notifications: Path | None,
    audiences: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the Slack bot for support staff (refund reviews, feedback, deadlines, lookups)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        _run(ctx, db, mode, host, port, deliver_every, sweep_every, notifications, audiences)
    except IapFlowError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(
    ctx: click.Context,
    db: str | None,
    mode: str,
    host: str,
    port: int,
    deliver_every: float,
    sweep_every: float,
    notifications: Path | None,
    audiences: tuple[str, ...] = ("buyer", "staff"),
) -> None:
    from iap_flow.adapters.notifiers import JsonLinesNotifier
    from iap_flow.cli import db_url, notifications_path
    from iap_flow.flow import DEFAULT_URL

    from .app import open_bot
    from .config import SlackConfig
    from .serve import EVENTS_PATH, OutboxWorker, http_server, socket_mode

    config = SlackConfig.from_env(os.environ)
    if mode == "auto":
        mode = "socket" if config.app_token else "http"
    if mode == "socket" and not config.app_token:
        raise click.UsageError("Socket Mode needs SLACK_APP_TOKEN (an app-level token, xapp-...)")
    if mode == "http" and not config.signing_secret:
        raise click.UsageError("HTTP mode needs SLACK_SIGNING_SECRET (Basic Information page)")
    url = db_url(db) if db else getattr(ctx.obj, "url", None) or DEFAULT_URL
    fallback = JsonLinesNotifier(notifications or notifications_path(url))
    flow, app = open_bot(config, url, fallback=fallback, audiences=audiences)
    worker = OutboxWorker(flow, deliver_every=deliver_every, sweep_every=sweep_every)
    worker.start()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if mode == "socket":
            assert config.app_token is not None
            click.echo("iap-flow slack: connecting in Socket Mode", err=True)
            # slack_bolt leaves start() unannotated; it blocks until interrupted
            socket_mode(app, config.app_token).start()  # type: ignore[no-untyped-call]
        else:
            server = http_server(app, host, port)
            bound = server.server_address[1]
            click.echo(f"iap-flow slack: listening on http://{host}:{bound}{EVENTS_PATH}", err=True)
            try:
                server.serve_forever()
            finally:
                server.server_close()
    except KeyboardInterrupt:
        click.echo("iap-flow slack: stopping", err=True)
    finally:
        worker.stop()
        flow.close()
