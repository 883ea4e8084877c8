"""``iap-flow serve``: the HTTP service under uvicorn, on the global ``--db`` store."""

from __future__ import annotations

import logging
from pathlib import Path

import click

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
    """Serve the HTTP API (buyers, staff, /healthz, /readyz, /metrics, /openapi.json)."""
    import uvicorn

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
        flow = ctx.obj.open(notifications)
    except IapFlowError as exc:
        raise click.ClickException(str(exc)) from exc
    if buyers is None:
        click.echo("warning: no --jwks-url/--jwks-file/--jwt-secret: buyer routes answer 401")
    if staff is None:
        click.echo("warning: no --api-keys: staff routes answer 401")
    app = create_app(flow, buyers=buyers, staff=staff, threads=threads)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
    finally:
        flow.close()
