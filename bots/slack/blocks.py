"""Block Kit builders: records in, Slack messages, modals and views out. Pure functions.

Every message also gets a plain ``text`` (notifications and screen readers use it). Times are
Slack date tokens, shown in each reader's own time zone, with a UTC fallback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from iap_flow.domain.models import AuditEvent, RefundRequest, RefundStatus, TicketStatus
from iap_flow.domain.money import Money

from .reads import RefundView, TicketView

Block = dict[str, Any]
Message = tuple[str, list[Block]]

APPROVE, REJECT = "refund_approve", "refund_reject"
REPLY, RESOLVE = "ticket_reply", "ticket_resolve"
REJECT_VIEW, REPLY_VIEW = "refund_reject_view", "ticket_reply_view"
REASON, ANSWER = "reason", "answer"
"""Action ids, modal callback ids and input block ids: the contract with :mod:`.app`."""

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
OPEN = (RefundStatus.REQUESTED, RefundStatus.IN_REVIEW)
MAX_LINES = 25


# -- formatting ---------------------------------------------------------------------------
def esc(value: object) -> str:
    """Text from a buyer or a platform, made inert for Slack mrkdwn: ``&``, ``<`` and ``>``
    become entities, so ``<!channel>`` pings no one and ``<https://x|label>`` is no link."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: object) -> str:
    """An id in a code span, escaped (a backtick inside would end the span)."""
    return "`" + esc(value).replace("`", "'") + "`"


def mention(user_id: str | None) -> str:
    """A Slack mention for Slack users; other actors (CLI, system) by their id."""
    if user_id is None:
        return "someone"
    return f"<@{user_id}>" if _SLACK_USER.match(user_id) else code(user_id)


def when(dt: datetime | None) -> str:
    """Date and time in the reader's time zone (fallback: UTC)."""
    if dt is None:
        return "-"
    return f"<!date^{int(dt.timestamp())}^{{date_short_pretty}} {{time}}|{dt:%Y-%m-%d %H:%M} UTC>"


def at_time(dt: datetime | None) -> str:
    """Time of day in the reader's time zone (fallback: ``14:02 UTC``)."""
    if dt is None:
        return "-"
    return f"<!date^{int(dt.timestamp())}^{{time}}|{dt:%H:%M} UTC>"


def time_left(due: datetime | None, now: datetime) -> str:
    """``in 3h 05m`` or ``overdue by 20m``."""
    if due is None:
        return "no deadline"
    seconds = int((due - now).total_seconds())
    minutes = abs(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    span = f"{days}d {hours}h" if days else (f"{hours}h {mins:02d}m" if hours else f"{mins}m")
    return f"in {span}" if seconds >= 0 else f"overdue by {span}"


def section(text: str, fields: Sequence[str] = ()) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": f[:2000]} for f in fields[:10]]
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def quote(text: str) -> str:
    """Buyer text as a block quote, escaped."""
    return "\n".join("&gt;" + esc(line) for line in text.splitlines() or [""])


def lines(items: Sequence[str]) -> str:
    shown = list(items[:MAX_LINES])
    if len(items) > MAX_LINES:
        shown.append(f"... and {len(items) - MAX_LINES} more")
    return "\n".join(shown)


# -- refunds ------------------------------------------------------------------------------
def refund_status(refund: RefundRequest) -> str | None:
    """The decision line that replaces the buttons; None while the refund awaits review."""
    status, who = refund.status, mention(refund.decided_by)
    if status in OPEN:
        return None
    if status is RefundStatus.REJECTED:
        if refund.decided_by is None:
            return ":no_entry: Declined by the payment platform"
        return f":no_entry: Rejected by {who}: {esc(refund.decision_note)}"
    if status is RefundStatus.WITHDRAWN:
        return ":leftwards_arrow_with_hook: Withdrawn by the buyer"
    if refund.decided_by is None:
        return ":white_check_mark: Refunded by the payment platform"
    line = f":white_check_mark: Approved by {who} at {at_time(refund.decided_at)}"
    after = {
        RefundStatus.APPROVED: "waiting for the payment platform",
        RefundStatus.SUBMITTED: "submitted to the payment platform",
        RefundStatus.REFUNDED: "refunded",
        RefundStatus.FAILED: f"payout failed ({esc(refund.last_error)}); it is retried",
    }
    return f"{line} · {after[status]}"


def refund_card(view: RefundView, now: datetime, title: str = "Refund request") -> Message:
    """The review message: what a reviewer needs, and Approve / Reject while undecided."""
    refund, order = view.refund, view.order
    amount = str(refund.amount)
    if refund.amount != order.amount:
        amount += f" (of {order.amount})"
    blocks = [
        section(
            f":money_with_wings: *{title}* {code(refund.id)} · *{refund.amount}*",
            [
                f"*Buyer*\n{code(refund.user_id)}",
                f"*Product*\n{esc(order.title)} ({code(order.sku)})",
                f"*Amount*\n{amount}",
                f"*Platform*\n{order.platform}",
                f"*Purchased*\n{when(order.created_at)}",
                f"*Paid*\n{when(order.paid_at) if order.paid_at else 'not paid'}",
                f"*Order*\n{code(order.id)}",
                f"*Review due*\n{when(refund.review_due_at)} ({time_left(refund.review_due_at, now)})",
            ],
        ),
        section(f"*Reason*\n{quote(refund.reason)}"),
    ]
    earlier = [
        f"• {code(r.id)} {r.amount} · {r.status} · {when(r.created_at)}" for r in view.earlier
    ]
    blocks.append(section("*Earlier refunds of this buyer*\n" + (lines(earlier) or "none")))
    status = refund_status(refund)
    over = refund.amount.amount > view.agent_limit
    if status is not None:
        blocks.append(section(status))
        return f"Refund {esc(refund.id)}: {plain(status)}", blocks
    if refund.escalated:
        blocks.append(context(":rotating_light: The review deadline passed: escalated to leads."))
    if over:
        limit = Money(view.agent_limit, refund.amount.currency)
        blocks.append(
            context(f":warning: Above the support-agent limit of {limit}: a lead must decide.")
        )
    approve = _button("Approve (lead)" if over else "Approve", APPROVE, refund.id, "primary")
    approve["confirm"] = {
        "title": {"type": "plain_text", "text": "Approve this refund?"},
        "text": {"type": "mrkdwn", "text": f"{refund.amount} goes back to {code(refund.user_id)}."},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    blocks.append(
        {
            "type": "actions",
            "block_id": "refund_actions",
            "elements": [approve, _button("Reject", REJECT, refund.id, "danger")],
        }
    )
    text = f"Refund request {esc(refund.id)}: {refund.amount} from {esc(refund.user_id)}, review due {plain(when(refund.review_due_at))}"
    return text, blocks


def plain(mrkdwn: str) -> str:
    return re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", re.sub(r":[a-z_]+: ", "", mrkdwn))


# -- tickets ------------------------------------------------------------------------------
def _step_line(step: AuditEvent | None) -> str | None:
    if step is None:
        return None
    lines = {
        "answer": f":speech_balloon: Answered by {mention(step.actor_id)} at {at_time(step.at)}",
        "resolve": f":white_check_mark: Resolved by {mention(step.actor_id)} at {at_time(step.at)}",
        "reopen": f":leftwards_arrow_with_hook: Reopened by the buyer at {at_time(step.at)}",
    }
    return lines.get(step.event)


REASON_WORDS = {
    "slow_delivery": "paid but waited too long",
    "payment_problem": "a payment problem",
    "not_as_described": "not as described",
    "too_expensive": "too expensive",
    "app_problem": "the app does not work",
    "support": "unhappy with support",
    "other": "another reason",
}
"""A bad rating's reason as support reads it."""


def ticket_card(view: TicketView, now: datetime) -> Message:
    """A feedback ticket: rating, text, deadline, latest step; Reply / Resolve until resolved."""
    ticket = view.ticket
    stars = "★" * ticket.rating + "☆" * (5 - ticket.rating)
    title = "Feedback reopened" if ticket.status is TicketStatus.REOPENED else "Feedback"
    if ticket.status is TicketStatus.WAITING_ON_BUYER:
        title = "Feedback waiting on the buyer"
    fields = [
        f"*Buyer*\n{code(ticket.user_id)}",
        f"*Order*\n{code(ticket.order_id) if ticket.order_id else '-'}",
        f"*Submitted*\n{when(ticket.created_at)}",
        f"*Due*\n{when(view.due_at)} ({time_left(view.due_at, now)})"
        if view.due_at
        else "*Due*\n-",
        f"*Priority*\n{esc(ticket.priority)}"
        + (f" · escalated to level {ticket.level}" if ticket.level else ""),
    ]
    if ticket.reason is not None:
        fields.append(
            f"*Why {ticket.rating}/5*\n{esc(REASON_WORDS.get(ticket.reason, ticket.reason))}"
        )
    elif ticket.rating <= 2:
        fields.append("*Why*\n_the buyer was asked_")
    blocks = [
        section(
            f":speech_balloon: *{title}* {code(ticket.id)} · {stars} ({ticket.rating}/5)", fields
        ),
        section(quote(ticket.body)),
    ]
    buyer_says = [m for m in ticket.messages if m.role == "buyer"]
    if ticket.status is TicketStatus.REOPENED and buyer_says:
        blocks.append(section("*The buyer writes again*\n" + quote(buyer_says[-1].body)))
    status = _step_line(view.last_step)
    if status is not None:
        blocks.append(section(status))
    if ticket.status is not TicketStatus.RESOLVED:
        blocks.append(
            {
                "type": "actions",
                "block_id": "ticket_actions",
                "elements": [
                    _button("Reply", REPLY, ticket.id, "primary"),
                    _button("Resolve", RESOLVE, ticket.id),
                ],
            }
        )
    text = f"{title} {esc(ticket.id)} from {esc(ticket.user_id)}: {ticket.rating}/5"
    return text + (f" ({plain(status)})" if status else ""), blocks


def answer_in_thread(user_id: str, body: str) -> Message:
    """The answer as it went to the buyer, posted in the ticket's thread."""
    return f"{esc(user_id)} answered the buyer", [
        section(f"{mention(user_id)} answered the buyer:\n{quote(body)}")
    ]


# -- modals -------------------------------------------------------------------------------
def _modal(
    callback_id: str, title: str, submit: str, meta: Mapping[str, str], blocks: list[Block]
) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(dict(meta), separators=(",", ":")),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _text_input(block_id: str, label: str, hint: str) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": {"type": "plain_text_input", "action_id": block_id, "multiline": True},
    }


def reject_modal(refund_id: str, meta: Mapping[str, str]) -> Block:
    """Asks why: the buyer reads the reason."""
    return _modal(
        REJECT_VIEW,
        "Reject refund",
        "Reject",
        meta,
        [
            section(f"Reject refund {code(refund_id)}. The buyer will read your reason."),
            _text_input(REASON, "Reason", "A sentence the buyer will understand."),
        ],
    )


def reply_modal(ticket_id: str, meta: Mapping[str, str]) -> Block:
    """The answer to a feedback ticket, sent to the buyer."""
    return _modal(
        REPLY_VIEW,
        "Reply to feedback",
        "Send",
        meta,
        [
            section(f"Answer ticket {code(ticket_id)}. The buyer receives it as it is."),
            _text_input(ANSWER, "Answer", "Shown to the buyer and in the ticket's thread."),
        ],
    )
