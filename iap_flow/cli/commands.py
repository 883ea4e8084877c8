"""The ``iap-flow`` command line: the demo simulation, queries, the sweep, docs and the report.

Every command goes through the public API as an :class:`~iap_flow.domain.roles.Actor`: reads and the
report as the ``developer`` actor ``cli``, the sweep as the ``system`` actor (deadline sweeps
are the system's job). An :class:`~iap_flow.domain.errors.IapFlowError` prints one red line and
exits 1; a usage mistake exits 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iap_flow.cli.plugins import EntryPointPlugins, Plugin, PluginCommand
from iap_flow.cli.process_doc import process_document
from iap_flow.cli.simulation import open_demo_flow, simulate
from iap_flow.domain.errors import IapFlowError, InvalidInput
from iap_flow.domain.models import OrderStatus, RefundStatus
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.flow import DEFAULT_URL, Flow, open_flow
from iap_flow.ports import Notifier
from iap_flow.report import Report

CLI_ACTOR = Actor("cli", Role.DEVELOPER)
"""Who the CLI acts as for reads and reports (the sweep runs as :data:`~iap_flow.domain.roles.SYSTEM`)."""


PLUGINS: Mapping[str, Plugin] = EntryPointPlugins()
"""Commands provided by extras and other distributions (entry points, read when first needed)."""


def db_url(value: str) -> str:
    """A store URL from ``--db``: URLs pass through, a bare path means an SQLite file."""
    value = value.strip()
    if not value:
        raise click.BadParameter("give a URL (sqlite:///orders.db) or a file path")
    return value if "://" in value else "sqlite:///" + value


def sqlite_path(url: str) -> Path | None:
    """The file behind an ``sqlite:///`` URL; None for memory or another store."""
    rest = url.split("://", 1)[1] if url.startswith("sqlite://") else ""
    return Path(rest[1:]) if rest.startswith("/") and rest not in ("/", "/:memory:") else None


def notifications_path(url: str) -> Path:
    """Where notifications go by default: ``<db>.notifications.jsonl`` next to an SQLite file."""
    path = sqlite_path(url)
    if path is None:
        return Path("iap_flow.notifications.jsonl")
    return path.with_name(path.stem + ".notifications.jsonl")


def _json_lines(path: Path | None) -> Notifier:
    # The CLI is a composition root like open_flow: it picks adapters by name at run time,
    # so the core never imports them.
    module = importlib.import_module("iap_flow.adapters.notifiers")
    notifier: Notifier = module.JsonLinesNotifier(path)
    return notifier


def _out() -> Console:
    # Tables keep whole ids when the output is not a terminal (pipes, files, tests).
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not an ISO date or time (2026-01-31T12:00)"
        raise click.BadParameter(message) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    return _time(value)


since_option = click.option(
    "--since", callback=_parse_time, help="From this UTC date/time, ISO 8601 (inclusive)."
)
until_option = click.option(
    "--until", callback=_parse_time, help="Until this UTC date/time, ISO 8601 (exclusive)."
)


class FlowGroup(click.Group):
    """The ``iap-flow`` group: lazy plugin commands, and IapFlowError as one line + exit 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *PLUGINS})  # a built-in wins a name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        plugin = PLUGINS.get(cmd_name)
        if plugin is not None and cmd_name not in self.commands:
            return PluginCommand(cmd_name, plugin, _error)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, PluginCommand):
            command = command.load()
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IapFlowError as exc:
            _error(str(exc))
            raise click.exceptions.Exit(1) from exc


def _error(message: str) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"[bold red]error:[/] [red]{escape(message)}[/]")


@attrs.define
class Settings:
    url: str

    def open(self, notifications: Path | None = None) -> Flow:
        """Open the flow on ``--db``; notifications go to a JSON-lines file next to it."""
        path = notifications or notifications_path(self.url)
        return open_flow(self.url, notifier=_json_lines(path))


@click.group(cls=FlowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="IAP_FLOW_DB",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    help="Store URL (sqlite:///orders.db, postgresql://...) or an SQLite file path.",
)
@click.version_option(package_name="iap-flow")
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """Order management for in-app purchases: orders, refunds, feedback, deadlines.

    Reads and reports run as the developer actor "cli"; `sweep` runs as the system actor.
    """
    ctx.obj = Settings(db_url(db))


# -- demo -------------------------------------------------------------------------------------
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

    Staff, buyers and the product manager act in their own roles; the sweep runs as the
    system actor every simulated hour; the report is read as the developer actor "cli".
    """
    url = db_url(db) if db else settings.url
    path = sqlite_path(url)
    if fresh:
        if path is None:
            raise InvalidInput("--fresh deletes an SQLite file; for other stores use an empty one")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    notes = notifications or notifications_path(url)
    with open_demo_flow(url, seed=seed, notifier=_json_lines(notes)) as flow:
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
        console = _out()
        live = console.is_terminal
        with Progress(*columns, console=console, transient=True, disable=not live) as bar:
            task = bar.add_task("simulating", total=days * 24)
            stats = simulate(
                flow,
                buyers=buyers,
                days=days,
                seed=seed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        console.print(
            f"[bold]{escape(stats.lines()[0])}[/]; store {escape(url)}, "
            f"notifications in {escape(str(notes))}"
        )
        show_report(console, flow.report(CLI_ACTOR))


# -- queries ----------------------------------------------------------------------------------
def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


@cli.command()
@click.option("--user", help="Only this buyer's orders.")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in OrderStatus], case_sensitive=False),
    help="Only orders in this status (repeat for several).",
)
@since_option
@until_option
@click.option("--limit", type=int, default=20, show_default=True, help="Orders per page.")
@click.option("--cursor", help="Continue from a previous page's next cursor.")
@click.pass_obj
def orders(
    settings: Settings,
    user: str | None,
    status: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> None:
    """Orders newest first, filtered by buyer, status and creation time."""
    with settings.open() as flow:
        page = flow.orders.query(
            CLI_ACTOR,
            user_id=user,
            status=[s.lower() for s in status] or None,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    table = Table("order", "user", "product", "amount", "status", "created (UTC)", "paid (UTC)")
    for o in page.items:
        table.add_row(
            o.id, o.user_id, o.sku, str(o.amount), o.status, _when(o.created_at), _when(o.paid_at)
        )
    out = _out()
    out.print(table if page.items else "no orders match")
    out.print(f"next cursor: {page.next_cursor}" if page.next_cursor else "no more orders")


def _due(due: datetime | None, now: datetime) -> str:
    """``in 5h12m`` or ``overdue 2d03h``: how long until (or since) a review deadline."""
    if due is None:
        return "-"
    left = due - now
    minutes = int(abs(left) / timedelta(minutes=1))
    hours, rest = divmod(minutes, 60)
    span = f"{hours // 24}d{hours % 24:02d}h" if hours >= 48 else f"{hours}h{rest:02d}m"
    return f"in {span}" if left >= timedelta(0) else f"[red]overdue {span}[/]"


@cli.command()
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in RefundStatus], case_sensitive=False),
    help="Refund status to list (repeat for several) [default: in_review].",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_obj
def refunds(settings: Settings, status: tuple[str, ...], limit: int) -> None:
    """The refund review queue: soonest review deadline first."""
    with settings.open() as flow:
        items = flow.refunds.queue(
            CLI_ACTOR, status=[s.lower() for s in status] or RefundStatus.IN_REVIEW, limit=limit
        )
        now = flow.clock.now()
    table = Table("refund", "order", "amount", "reason", "status", "due in")
    for r in items:
        due = _due(r.review_due_at, now) if r.status is RefundStatus.IN_REVIEW else "-"
        reason = r.reason if len(r.reason) <= 40 else r.reason[:39] + "…"
        table.add_row(r.id, r.order_id, str(r.amount), escape(reason), r.status, due)
    _out().print(table if items else "no refunds in that status")


@cli.command()
@click.argument("record_id")
@click.pass_obj
def show(settings: Settings, record_id: str) -> None:
    """One order (ord_...), refund (rfd_...) or ticket (tkt_...) and its audit trail."""
    with settings.open() as flow:
        getters: dict[str, Callable[[Actor, str], Any]] = {
            "ord": flow.orders.get,
            "rfd": flow.refunds.get,
            "tkt": flow.feedback.get,
        }
        getter = getters.get(record_id.partition("_")[0])
        if getter is None:
            raise InvalidInput(
                f"{record_id!r} is not an order, refund or ticket id (ord_/rfd_/tkt_)"
            )
        record = getter(CLI_ACTOR, record_id)
        history = flow.history(CLI_ACTOR, record_id)
    fields = Table("field", "value", show_header=False)
    for field in attrs.fields(type(record)):
        value = getattr(record, field.name)
        if field.name != "messages" and value is not None:
            fields.add_row(field.name, escape(str(value)))
    trail = Table("at (UTC)", "event", "from", "to", "actor", "role")
    for e in history:
        trail.add_row(_when(e.at), e.event, e.from_state or "-", e.to_state, e.actor_id, e.role)
    out = _out()
    out.print(fields)
    out.print(trail)


# -- maintenance, docs, report ----------------------------------------------------------------
@cli.command()
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for the notifications it sends (default: next to the database).",
)
@click.pass_obj
def sweep(settings: Settings, notifications: Path | None) -> None:
    """Act on due deadlines now, as the system actor: expire, remind, escalate, retry."""
    with settings.open(notifications) as flow:
        result = flow.sweep(SYSTEM)
    _out().print(
        f"expired {result.expired} orders, sent {result.reminded} reminders, "
        f"escalated {result.escalated}, retried {result.retried} refunds, "
        f"delivered {result.delivered} notifications"
    )


@cli.command()
@click.option(
    "--out",
    "target",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write to this file (default: stdout).",
)
def docs(target: TextIO) -> None:
    """Write the process document (Markdown, Mermaid diagrams) generated from the code."""
    target.write(process_document())


def show_report(out: Console, report: Report) -> None:
    """Print a report as a two-column table (``iap-flow report`` and ``demo`` share it)."""
    table = Table("figure", "value", title="Report", title_justify="left")
    for line in report.lines():
        label, _, value = line.partition(": ")
        table.add_row(escape(label.replace("  ", "   ", 1)), escape(value))
    out.print(table)


def main() -> None:
    """Console-script entry point (``iap-flow``)."""
    cli(prog_name="iap-flow")


if __name__ == "__main__":  # pragma: no cover
    main()
