"""Commands that make or maintain a store: ``init``, ``migrate``, ``demo``, ``sweep``, ``docs``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from iap_flow import observability
from iap_flow.cli.commands import (
    CLI_ACTOR,
    Settings,
    cli,
    db_url,
    json_lines,
    json_option,
    notifications_path,
    sqlite_path,
)
from iap_flow.cli.output import console, emit_json, inert
from iap_flow.cli.simulation import open_demo_flow, simulate
from iap_flow.cli.stores import SetupError, inspect
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.roles import SYSTEM


@cli.command()
@click.pass_obj
def init(settings: Settings) -> None:
    """Create an empty iap-flow store at --db (refuses a file that holds anything else)."""
    state = inspect(settings.url)
    if state is not None and state.exists:
        raise SetupError(
            f"{state.where} already holds an iap-flow store (schema version {state.version}); "
            + ("nothing to do" if state.ready else "run `iap-flow migrate`")
        )
    with settings.open(create=True) as flow:
        version = flow.readiness()[1] or "?"
    console().print(
        f"created an iap-flow store at {inert(settings.url)} (schema version {version})"
    )


@cli.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Upgrade an existing iap-flow store to this version's schema."""
    state = inspect(settings.url)
    if state is None or not state.exists:
        where = settings.url if state is None else state.where
        raise SetupError(
            f"no iap-flow store at {where} to migrate; create one with `iap-flow init`"
        )
    if state.version > state.current:
        raise SetupError(
            f"{state.where} has schema version {state.version}, newer than this iap-flow "
            f"({state.current}); upgrade iap-flow"
        )
    with settings.open(create=True):
        pass
    if state.version == state.current:
        console().print(f"{inert(state.where)} is at schema version {state.current}: nothing to do")
    else:
        console().print(
            f"migrated {inert(state.where)} from schema version {state.version} to {state.current}"
        )


@cli.command()
@click.option("--buyers", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same report.")
@click.option("--db", "db", help="Store for the demo (default: the group's --db).")
@click.option("--fresh", is_flag=True, help="Delete an existing SQLite demo database first.")
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for notifications (default: next to the database).",
)
@click.pass_obj
def demo(
    settings: Settings,
    buyers: int,
    days: int,
    seed: int,
    db: str | None,
    fresh: bool,
    notifications: Path | None,
) -> None:
    """Simulate buyers and support staff over simulated days, then print the report.

    Creates the store if it does not exist. Staff, buyers and the product manager act in
    their own roles; the sweep runs as the system actor every simulated hour.
    """
    url = db_url(db) if db else settings.url
    path = sqlite_path(url)
    if fresh and path is None:
        raise SetupError(
            "--fresh deletes an SQLite demo file and cannot empty other stores; "
            "for PostgreSQL run the demo without --fresh on a new schema (?schema=demo2)"
        )
    notes = notifications or notifications_path(url)
    if not notes.parent.is_dir():
        raise SetupError(f"folder {notes.parent} for the notifications does not exist")
    state = inspect(url)  # refuses a foreign file, even with --fresh
    if fresh and path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    elif state is not None and state.exists and not state.ready:
        raise SetupError(f"{state.where} needs `iap-flow migrate` before a demo can use it")
    with open_demo_flow(url, seed=seed, notifier=json_lines(notes)) as flow:
        if flow.catalogue.products(include_inactive=True):
            raise InvalidInput(
                f"{url} already holds data; run the demo with --fresh to start it over, "
                "or give another --db"
            )
        notes.write_text("", encoding="utf-8")
        columns = (
            TextColumn("simulated hours"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        out = console()
        with Progress(*columns, console=out, transient=True, disable=not out.is_terminal) as bar:
            task = bar.add_task("simulating", total=days * 24)
            stats = simulate(
                flow,
                buyers=buyers,
                days=days,
                seed=seed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        out.print(
            f"[bold]{inert(stats.lines()[0])}[/]; store {inert(url)}, "
            f"notifications in {inert(str(notes))}"
        )
        from iap_flow.analysis import analyse
        from iap_flow.analysis.terminal import print_summary

        # The same figures, formatted the same way, as `iap-flow report` prints.
        print_summary(analyse(flow, CLI_ACTOR), out)


@cli.command()
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for the notifications it sends (default: next to the database).",
)
@json_option
@click.pass_obj
def sweep(settings: Settings, notifications: Path | None, as_json: bool) -> None:
    """Act on due deadlines now, as the system actor: expire, remind, escalate, retry."""
    with settings.open(notifications) as flow:
        result = flow.sweep(SYSTEM)
    figures = {
        "expired": result.expired,
        "reminded": result.reminded,
        "escalated": result.escalated,
        "retried": result.retried,
        "delivered": result.delivered,
    }
    observability.note(**figures)
    if as_json:
        emit_json(figures)
        return
    console().print(
        f"expired {result.expired} orders, sent {result.reminded} reminders, "
        f"escalated {result.escalated}, retried {result.retried} refunds, "
        f"delivered {result.delivered} notifications"
    )


@cli.command()
@click.option(
    "--out",
    "target",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    help="Write to this file (default: stdout).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="Language of the document (zh: the names of the original Chinese process).",
)
@click.option(
    "--html", "as_html", is_flag=True, help="A self-contained HTML page (diagrams drawn)."
)
def docs(target: Path, lang: str, as_html: bool) -> None:
    """Write the process document for every department, generated from the code."""
    from iap_flow.cli.process_doc import process_document

    to_stdout = str(target) == "-"
    if not to_stdout and not target.expanduser().resolve().parent.is_dir():
        raise SetupError(f"folder {target.expanduser().resolve().parent} does not exist")
    text = process_document(lang=lang)
    if as_html:
        from iap_flow.cli.process_html import to_html

        text = to_html(text, lang=lang)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        target.write_text(text, encoding="utf-8")
