"""On-call write commands: ``approve``, ``reject``, ``payout``, ``notify list|deliver``.

They act as the staff member configured with ``--actor ID:ROLE`` (or ``IAP_FLOW_ACTOR``),
through the same public API as the Slack bot, so the permission table decides what they may
do and the audit trail records who did it, like any other actor's change.
"""

from __future__ import annotations

import click

from iap_flow import observability
from iap_flow.cli.commands import CLI_ACTOR, Settings, cli, json_option
from iap_flow.cli.output import console, emit_json, inert, table, when
from iap_flow.domain.models import RefundRequest
from iap_flow.domain.money import Money

key_option = click.option(
    "--idempotency-key",
    "key",
    help="Repeat a command safely: the same key never acts twice.",
)


def _done(refund: RefundRequest, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json({"refund": refund})
        return
    note = f" ({inert(refund.last_error)})" if refund.last_error else ""
    console().print(f"{verb} {inert(refund.id)}: now {inert(refund.status)}{note}")


@cli.command()
@click.argument("refund_id")
@click.option("--note", help="A note kept with the decision.")
@click.option(
    "--amount",
    type=click.IntRange(min=1),
    help="Grant less than was asked: minor units (cents) in the refund's currency.",
)
@key_option
@json_option
@click.pass_obj
def approve(
    settings: Settings,
    refund_id: str,
    note: str | None,
    amount: int | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Approve a refund in review (and pay it out), as the --actor staff member."""
    actor = settings.staff()
    observability.note(refund_id=refund_id, actor=actor.id)
    with settings.open() as flow:
        granted = None
        if amount is not None:
            granted = Money(amount, flow.refunds.get(actor, refund_id).amount.currency)
        refund = flow.refunds.approve(
            actor, refund_id, note=note, amount=granted, idempotency_key=key
        )
    _done(refund, as_json, "approved")


@cli.command()
@click.argument("refund_id")
@click.option("--reason", required=True, help="Why, in words the buyer will read.")
@key_option
@json_option
@click.pass_obj
def reject(settings: Settings, refund_id: str, reason: str, key: str | None, as_json: bool) -> None:
    """Reject a refund in review with a reason, as the --actor staff member."""
    actor = settings.staff()
    observability.note(refund_id=refund_id, actor=actor.id)
    with settings.open() as flow:
        refund = flow.refunds.reject(actor, refund_id, reason=reason, idempotency_key=key)
    _done(refund, as_json, "rejected")


@cli.command()
@click.argument("refund_id")
@json_option
@click.pass_obj
def payout(settings: Settings, refund_id: str, as_json: bool) -> None:
    """Submit an approved or failed refund's payout again (never pays twice)."""
    actor = settings.staff()
    observability.note(refund_id=refund_id, actor=actor.id)
    with settings.open() as flow:
        refund = flow.refunds.execute(actor, refund_id)
    _done(refund, as_json, "payout of")


@cli.group()
def notify() -> None:
    """The outbox of notifications: what waits, and delivering it now."""


@notify.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option(
    "--after", type=click.IntRange(0), default=0, help="Only notifications after this id."
)
@json_option
@click.pass_obj
def notify_list(settings: Settings, limit: int, after: int, as_json: bool) -> None:
    """Notifications not delivered yet, oldest first, with their failed attempts."""
    with settings.open() as flow:
        backlog = flow.outbox_backlog(CLI_ACTOR)
        items = flow.outbox_pending(CLI_ACTOR, after=after, limit=limit)
        now = flow.clock.now()
    pending = backlog.pending
    more = bool(items) and pending > len(items) and after == 0
    if as_json:
        emit_json(
            {
                "pending": pending,
                "failing": backlog.failing,
                "items": items,
                "more": more,
            }
        )
        return
    out = console()
    if not items:
        out.print("no notifications waiting")
        return
    cells: list[list[object]] = [
        [
            r["id"],
            r["topic"],
            r["audience"],
            r["recipient"],
            when(r["created_at"]),
            r["attempts"],
            r["last_error"] or "-",
        ]
        for r in items
    ]
    out.print(
        table(
            "id",
            "topic",
            "audience",
            "recipient",
            "created (UTC)",
            "attempts",
            "last error",
            rows=cells,
        )
    )
    oldest = now - min(r["created_at"] for r in items)
    out.print(f"{pending} waiting, oldest {oldest.total_seconds() / 60:,.0f} min old")
    if more:
        out.print(f"more: --after {items[-1]['id']}")


@notify.command("deliver")
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, writable=True),
    help="JSON-lines file to deliver to (default: next to the database).",
)
@json_option
@click.pass_obj
def notify_deliver(settings: Settings, notifications: str | None, as_json: bool) -> None:
    """Deliver (or retry) every waiting notification now, as the --actor (a developer)."""
    from pathlib import Path

    actor = settings.staff()
    with settings.open(Path(notifications) if notifications else None) as flow:
        delivered = flow.deliver_notifications(actor)
        left = flow.outbox_backlog(actor).pending
    observability.note(delivered=delivered, left=left)
    if as_json:
        emit_json({"delivered": delivered, "waiting": left})
    else:
        console().print(f"delivered {delivered} notifications, {left} still waiting")
