"""Block Kit for screens and notices: the queue (App Home and slash command), order lookups,
deadline reminders and escalations, and the texts staff read when the core says no.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from iap_flow.domain.errors import (
    AlreadyDecided,
    ConflictError,
    IapFlowError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TransitionNotAllowed,
)
from iap_flow.domain.policy import ApprovalLimitExceeded

from .blocks import (
    Block,
    Message,
    code,
    context,
    esc,
    lines,
    mention,
    plain,
    section,
    time_left,
    when,
)
from .reads import OrderView, QueueItem, QueuePage

PER_PAGE = 20
"""Items per page of ``/iap queue <page>``."""
HOME_ITEMS = 40
"""Items on the App Home tab (a whole number of pages; the rest: ``/iap queue 3`` on)."""

_DEADLINES = {
    "refund_review": "review of refund",
    "ticket_first_response": "first answer to ticket",
    "ticket_resolution": "resolution of ticket",
    "order_payment": "payment of order",
    "refund_retry": "payout retry of refund",
    "order_delivery": "delivery of paid order",
    "ticket_escalation": "lead's time on escalated ticket",
}


# -- queue, home, order lookup ------------------------------------------------------------
def queue_blocks(items: Sequence[QueueItem], now: datetime) -> list[Block]:
    """One line per waiting refund or ticket, soonest deadline first."""
    if not items:
        return [section("Nothing is waiting for you. :tada:")]
    rows = []
    for item in items:
        lead = " · :warning: needs a lead" if item.needs_lead else ""
        rows.append(
            f"• *{item.kind.capitalize()}* {code(item.id)} · {esc(item.summary)} · "
            f"due {time_left(item.due_at, now)}{lead}"
        )
    return [section(lines(rows[i : i + 10])) for i in range(0, len(rows), 10)]


def queue_page_blocks(
    queue: QueuePage, now: datetime, command: str, next_page: int | None = None
) -> list[Block]:
    """A page of the queue, with where it is and how to see the rest (``next_page``: the
    slash command's page that follows, if not simply the next one)."""
    shown = queue_blocks(queue.items, now)
    if queue.total > len(queue.items) or queue.page > 1:
        first = (queue.page - 1) * queue.per_page + 1
        last = first + len(queue.items) - 1
        where = (
            f"Showing {first}-{last} of {queue.total} waiting (page {queue.page} of {queue.pages})."
        )
        if queue.page < queue.pages:
            where += f" Next: `{command} queue {next_page or queue.page + 1}`"
        shown.append(context(where))
    return shown


def home_view(queue: QueuePage, now: datetime, command: str) -> Block:
    """The App Home tab: the first :data:`HOME_ITEMS` of my queue, refreshed on every open;
    the rest through the slash command's pages."""
    header = {"type": "header", "text": {"type": "plain_text", "text": "My queue"}}
    note = context(
        f"{queue.total} refunds awaiting review and tickets awaiting an answer · updated {when(now)}"
    )
    after = HOME_ITEMS // PER_PAGE + 1
    return {
        "type": "home",
        "blocks": [
            header,
            note,
            {"type": "divider"},
            *queue_page_blocks(queue, now, command, next_page=after),
        ],
    }


def home_refused() -> Block:
    """The App Home tab for someone who holds no staff role."""
    return {"type": "home", "blocks": [section(not_staff_text())]}


def order_blocks(view: OrderView) -> Message:
    """Status, audit trail, refunds and tickets of one order (for the slash command)."""
    order = view.order
    blocks = [
        section(
            f":receipt: *Order* {code(order.id)} · *{order.status}*",
            [
                f"*Buyer*\n{code(order.user_id)}",
                f"*Product*\n{esc(order.title)} ({code(order.sku)})",
                f"*Amount*\n{order.amount}",
                f"*Platform*\n{order.platform}",
                f"*Placed*\n{when(order.created_at)}",
                f"*Paid*\n{when(order.paid_at) if order.paid_at else 'not paid'}",
            ],
        )
    ]
    if view.history is None:
        history = "not visible to your role"
    else:
        history = lines(
            [
                f"• {when(e.at)} · {e.event}: {e.from_state or '-'} → {e.to_state} by {mention(e.actor_id)} ({e.role})"
                for e in view.history
            ]
        )
    blocks.append(section(f"*History*\n{history}"))
    refunds = [f"• {code(r.id)} {r.amount} · {r.status}" for r in view.refunds]
    blocks.append(section("*Refunds*\n" + (lines(refunds) or "none")))
    tickets = [f"• {code(t.id)} {t.rating}/5 · {t.status}" for t in view.tickets]
    blocks.append(section("*Tickets*\n" + (lines(tickets) or "none")))
    blocks.append(section("*What the buyer has now*\n" + _entitlements(view)))
    return f"Order {order.id}: {order.status}", blocks


def _entitlements(view: OrderView) -> str:
    if view.entitlements is None:
        return "not visible to your role"
    rows = []
    for e in view.entitlements:
        until = "no end" if e.expires_at is None else f"until {when(e.expires_at)}"
        units = f" x{e.units}" if e.kind.value == "consumable" else ""
        state = "" if e.subscription_status is None else f" · {e.subscription_status}"
        title = esc(view.titles.get(e.sku, e.sku))
        rows.append(f"• {title} {code(e.sku)}{units} ({e.kind}) {until}{state}")
    return lines(rows) or "nothing"


# -- deadlines and other staff notices ----------------------------------------------------
def deadline_notice(topic: str, payload: Mapping[str, Any], now: datetime, leads: str) -> Message:
    """A reminder before a deadline, or an escalation (mentioning the leads) after it."""
    what = _DEADLINES.get(str(payload.get("kind")), str(payload.get("kind")))
    subject = payload.get("subject_id")
    due = datetime.fromisoformat(str(payload["due_at"])) if payload.get("due_at") else None
    if topic == "deadline.reminder":
        text = f":alarm_clock: Reminder: the {esc(what)} {code(subject)} is due {when(due)} ({time_left(due, now)})."
    else:
        text = (
            f":rotating_light: {leads}: the {esc(what)} {code(subject)} was due {when(due)} "
            "and is overdue; it is escalated to you."
        )
    return plain(text), [section(text)]


def payout_escalated(payload: Mapping[str, Any], leads: str) -> Message:
    """A refund that the platform would not pay out, after its retries."""
    text = (
        f":rotating_light: {leads}: refund {code(payload.get('refund_id'))} "
        f"({esc(payload.get('amount'))} {esc(payload.get('currency'))} minor units) could not be "
        f"paid out: {esc(payload.get('error'))}. A lead must look at it."
    )
    return plain(text), [section(text)]


def generic_notice(topic: str, payload: Mapping[str, Any]) -> Message:
    """A staff notification this bot has no special layout for: shown, never dropped."""
    details = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in sorted(payload.items()))
    text = f":information_source: {code(topic)} · {details}"
    return plain(text), [section(text)]


# -- ephemeral texts ----------------------------------------------------------------------
def not_staff_text() -> str:
    """The polite refusal for a Slack user with no staff role."""
    return (
        "Sorry, you are not set up as support staff for iap-flow, so I can't do that for you. "
        "Nothing was changed. A workspace admin can add you to a support role."
    )


def help_text(command: str) -> str:
    """Usage of the slash command."""
    return (
        f"`{command} order <order id>`: an order's status, history, refunds and tickets\n"
        f"`{command} queue`: refunds awaiting review and tickets awaiting an answer\n"
        f"`{command} help`: this help"
    )


def error_text(exc: IapFlowError, *, mrkdwn: bool = True) -> str:
    """What a staff member reads when the core refuses their click (plain text for a
    modal's error line, which Slack does not format)."""
    if isinstance(exc, AlreadyDecided):
        text = f"Refund {code(exc.refund_id)} was already decided by {mention(exc.decided_by)}: it is {exc.state}."
    elif isinstance(exc, ApprovalLimitExceeded):
        text = (
            f"Refund {code(exc.refund_id)} is {exc.amount}, above your limit of {exc.limit}: "
            "a support lead must decide it."
        )
    elif isinstance(exc, PermissionDenied):
        text = f"Your role ({exc.role}) may not do that ({exc.action})."
    else:
        text = esc(str(exc).rstrip(".")) + "."
    safe = (InvalidInput, NotFound, PermissionDenied, TransitionNotAllowed, ConflictError)
    text += " Nothing was changed." if isinstance(exc, safe) else ""
    return (
        text
        if mrkdwn
        else plain(text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
