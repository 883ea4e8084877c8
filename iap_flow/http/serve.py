"""``iap-flow serve``: the HTTP service under uvicorn, on the global ``--db`` store.

With ``[platforms.app_store]`` / ``[platforms.google_play]`` in the configuration, their
notification webhooks are served too (``/webhooks/app-store``, ``/webhooks/google-play``;
Google's needs the push settings ``iap-flow webhooks`` needs); with a ``[slack]`` table (and
the ``slack`` extra), the bot's ``/slack/events``, and the bot's outbox delivery and sweep
timers run in this process as they do in ``iap-flow slack``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from iap_flow.config import Config, open_flow_from_config
from iap_flow.domain.errors import IapFlowError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="IAP_FLOW_HTTP_HOST")
@click.option("--port", default=8000, show_default=True, type=int, envvar="IAP_FLOW_HTTP_PORT")
@click.option(
    "--api-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="IAP_FLOW_API_KEYS",
    help='JSON file of staff keys: {"<key>": {"id": "lead_1", "role": "support_lead"}}.',
)
@click.option("--jwks-url", envvar="IAP_FLOW_JWKS_URL", help="Buyers' JWT keys, as a JWKS URL.")
@click.option(
    "--jwks-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="IAP_FLOW_JWKS_FILE",
    help="Buyers' JWT keys, as a JWKS file.",
)
@click.option(
    "--jwt-secret",
    envvar="IAP_FLOW_JWT_SECRET",
    help="HS256 secret for buyers' JWTs (development; prefer a JWKS).",
)
@click.option("--jwt-issuer", envvar="IAP_FLOW_JWT_ISSUER", default="iap-flow", show_default=True)
@click.option(
    "--jwt-audience", envvar="IAP_FLOW_JWT_AUDIENCE", default="iap-flow", show_default=True
)
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for notifications (default: next to the database).",
)
@click.option(
    "--threads/--no-threads",
    default=True,
    show_default=True,
    help="Run the SDK's blocking calls in a thread pool (the default). --no-threads runs "
    "them on the event loop, one request at a time: for measuring, not for production.",
)
@click.option("--log-level", default="INFO", show_default=True, envvar="IAP_FLOW_LOG_LEVEL")
@click.pass_context
def command(
    ctx: click.Context,
    host: str,
    port: int,
    api_keys: Path | None,
    jwks_url: str | None,
    jwks_file: Path | None,
    jwt_secret: str | None,
    jwt_issuer: str,
    jwt_audience: str,
    notifications: Path | None,
    threads: bool,
    log_level: str,
) -> None:
    """Serve the HTTP API (buyers, staff, /healthz, /readyz, /metrics, /openapi.json), and
    the store webhooks and Slack endpoints the configuration describes."""
    import uvicorn

    from iap_flow.cli.stores import require
    from iap_flow.config_platforms import store_notifications
    from iap_flow.http.app import create_app
    from iap_flow.http.auth import ApiKeys, JwtBearer

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        buyers = None
        if jwks_url or jwks_file or jwt_secret:
            buyers = JwtBearer(
                issuer=jwt_issuer,
                audience=jwt_audience,
                jwks_url=jwks_url,
                jwks_file=jwks_file,
                secret=jwt_secret,
            )
        staff = None if api_keys is None else ApiKeys.from_file(api_keys)
        require(ctx.obj.url)
        config = ctx.obj.configured(notifications)
        platforms = config.platforms()
        bot = _slack_bot(config, platforms)
        flow = bot.flow if bot is not None else open_flow_from_config(config, platforms=platforms)
        stores = store_notifications(flow, config, platforms)
    except IapFlowError as exc:
        raise click.ClickException(str(exc)) from exc
    if buyers is None:
        click.echo("warning: no --jwks-url/--jwks-file/--jwt-secret: buyer routes answer 401")
    if staff is None:
        click.echo("warning: no --api-keys: staff routes answer 401")
    app = create_app(
        flow,
        buyers=buyers,
        staff=staff,
        stores=stores,
        slack=None if bot is None else bot.app,
        threads=threads,
    )
    for path in app.mounts:
        click.echo(f"serving {path}")
    worker = None if bot is None else _bot_worker(config, bot)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
    finally:
        if worker is not None:
            worker.stop()
            worker.join(10)
            bot.app.listener_runner.listener_executor.shutdown(wait=True)
            bot.keeper.cards.close()
        flow.close()


def _slack_bot(config: Config, platforms: list[Any]) -> Any:
    """The Slack bot of the ``[slack]`` table (its flow delivers the staff's notifications to
    the review channel), or None without one."""
    if not config.data.get("slack", {}).get("review_channel"):
        return None
    try:
        from iap_flow.bots.slack.app import open_bot_parts
        from iap_flow.bots.slack.config import SlackConfig
    except ImportError as exc:
        raise config.section("slack").error(
            "review_channel", f"needs pip install 'iap-flow[slack]' ({exc})"
        ) from exc
    slack = SlackConfig.from_config(config)
    if not slack.signing_secret:
        raise config.section("slack").error(
            "signing_secret", "is needed to serve /slack/events: export SLACK_SIGNING_SECRET"
        )
    bot = open_bot_parts(slack, config, platforms=platforms)
    bot.roles.warm()  # user groups read now, so no click's ack waits for Slack
    return bot


def _bot_worker(config: Config, bot: Any) -> Any:
    """The bot's outbox delivery and sweep timers (``[slack]`` ``deliver_every`` /
    ``sweep_every``, as ``iap-flow slack`` runs them), started."""
    from iap_flow.bots.slack.serve import OutboxWorker

    table = config.section("slack")
    worker = OutboxWorker(
        bot.flow,
        deliver_every=table.number("deliver_every", 5.0),
        sweep_every=table.number("sweep_every", 60.0),
        keeper=bot.keeper,
    )
    worker.start()
    return worker
