"""``iap-flow slack``: run the bot in Socket Mode (app-level token) or over HTTP (signing secret).

Configuration comes from the deployment's file (``iap-flow --config``, its ``[slack]`` table;
see :mod:`iap_flow.config`) or, without one, from environment variables (:mod:`.config`);
``--db`` names the store like every other ``iap-flow`` command. The process delivers the
staff's notifications to the review channel (and the buyers' if it has a destination for
them), keeps every card in step, and runs the deadline sweep on a timer, unless turned off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from iap_flow.domain.errors import IapFlowError

_FROM_FILE = ("mode", "host", "port", "deliver_every", "sweep_every")


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
    from iap_flow.cli import Settings, db_url
    from iap_flow.config import load_config
    from iap_flow.flow import DEFAULT_URL

    from .app import open_bot_parts
    from .config import SlackConfig
    from .serve import EVENTS_PATH, OutboxWorker, http_server, socket_mode

    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings(DEFAULT_URL, load_config())
    if db:
        settings = Settings(db_url(db), settings.config)
    config = settings.configured(notifications)
    has_table = bool(config.data.get("slack", {}).get("review_channel"))
    slack = SlackConfig.from_config(config) if has_table else SlackConfig.from_env(os.environ)
    if has_table:  # the file's [slack] settings, unless given on the command line
        table = config.section("slack")
        default = click.core.ParameterSource.DEFAULT
        given = {n: ctx.get_parameter_source(n) not in (None, default) for n in _FROM_FILE}
        mode = mode if given["mode"] else (table.text("mode") or mode)
        host = host if given["host"] else (table.text("host") or host)
        port = port if given["port"] else table.integer("port", port)
        deliver_every = (
            deliver_every
            if given["deliver_every"]
            else table.number("deliver_every", deliver_every)
        )
        sweep_every = (
            sweep_every if given["sweep_every"] else table.number("sweep_every", sweep_every)
        )
    if mode == "auto":
        mode = "socket" if slack.app_token else "http"
    if mode == "socket" and not slack.app_token:
        raise click.UsageError("Socket Mode needs SLACK_APP_TOKEN (an app-level token, xapp-...)")
    if mode == "http" and not slack.signing_secret:
        raise click.UsageError("HTTP mode needs SLACK_SIGNING_SECRET (Basic Information page)")
    bot = open_bot_parts(slack, config, audiences=audiences)
    bot.roles.warm()  # user groups read now, so no click's ack waits for Slack
    worker = OutboxWorker(
        bot.flow, deliver_every=deliver_every, sweep_every=sweep_every, keeper=bot.keeper
    )
    worker.start()
    try:
        if mode == "socket":
            assert slack.app_token is not None
            signal.signal(signal.SIGTERM, _interrupt)
            click.echo("iap-flow slack: connecting in Socket Mode", err=True)
            # slack_bolt leaves start() unannotated; it blocks until interrupted
            socket_mode(bot.app, slack.app_token).start()  # type: ignore[no-untyped-call]
        else:
            stopped = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopped.set())
            server = http_server(bot.app, host, port)
            server.start()
            click.echo(
                f"iap-flow slack: listening on http://{host}:{server.port}{EVENTS_PATH}", err=True
            )
            stopped.wait()
            click.echo("iap-flow slack: stopping (finishing requests in flight)", err=True)
            server.stop()
    except KeyboardInterrupt:
        click.echo("iap-flow slack: stopping", err=True)
    finally:
        worker.stop()
        worker.join(10)
        bot.app.listener_runner.listener_executor.shutdown(wait=True)
        bot.keeper.cards.close()
        bot.flow.close()
