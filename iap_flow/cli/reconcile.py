"""``iap-flow reconcile``: what the App Store and Google Play say happened, matched with the
flow (Apple's notification and refund history, Google's voided purchases and order states),
as the system actor; what was missed is applied, and the report printed."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from iap_flow import observability
from iap_flow.cli.commands import Settings, cli, json_option
from iap_flow.cli.output import emit_json
from iap_flow.domain.roles import SYSTEM


@cli.command()
@click.option(
    "--source",
    "sources",
    type=click.Choice(["app_store", "google_play"]),
    multiple=True,
    help="Only this store (repeat for both); default: every configured store.",
)
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for the notifications it sends (default: next to the database).",
)
@json_option
@click.pass_obj
def reconcile(
    settings: Settings, sources: tuple[str, ...], notifications: Path | None, as_json: bool
) -> None:
    """Pull what the stores recorded and apply what the flow missed; safe to run often."""
    # found at run time, like the platforms' adapters (config_platforms): no import edge
    run = importlib.import_module("iap_flow.adapters.reconcile").reconcile

    with settings.open(notifications) as flow:
        report = run(flow, SYSTEM, sources=sources or None)
    observability.note(applied=report.applied, failed=report.failed)
    if as_json:
        emit_json(report.as_dict())
        return
    if not report.sources:
        click.echo("no store platform is configured: nothing to reconcile")
    for s in report.sources:
        click.echo(
            f"{s.source}: seen {s.seen}, applied {s.applied}, already known {s.already_known}, "
            f"ignored {s.ignored}, failed {s.failed}"
        )
        for problem in s.problems:
            click.echo(f"  {problem!r}")
    if report.failed:
        raise SystemExit(1)
