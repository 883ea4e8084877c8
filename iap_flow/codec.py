"""Flat rows <-> records. Every store and the idempotency log use these, so they agree.

Times are ISO 8601 UTC text with microseconds (sortable as text, readable in Datasette);
money is two columns, an integer amount in minor units and a currency code.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Notification,
    Order,
    OrderStatus,
    Period,
    Platform,
    Product,
    ProductKind,
    RatingReason,
    RefundRequest,
    RefundStatus,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
)
from iap_flow.domain.money import Money

Row = Mapping[str, Any]

_fromiso = datetime.fromisoformat


_memo: tuple[datetime | None, str] = (None, "")


def ts(dt: datetime) -> str:
    """A UTC datetime as fixed-width ISO text.

    One command writes its one ``now`` many times (order, audit event, deadline, outbox), so
    the last conversion is kept. The memo is one immutable pair swapped in a single
    assignment: a thread reads the old pair or the new one, never a time with another's
    text. It holds a reference to its datetime, so ``is`` cannot match a new object at a
    reused address.

    >>> from datetime import UTC, datetime
    >>> ts(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02T03:04:05.000000+00:00'
    """
    global _memo
    memo = _memo
    if memo[0] is dt:
        return memo[1]
    text = dt.isoformat(timespec="microseconds")
    _memo = (dt, text)
    return text


def ts_opt(dt: datetime | None) -> str | None:
    return None if dt is None else ts(dt)


def dt_opt(value: str | None) -> datetime | None:
    return None if value is None else _fromiso(value)


def _enum(enum_type: Any, value: Any, what: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        raise StoreError(f"stored {what} {value!r} is not a known value") from None


def _names(words: str) -> tuple[str, ...]:
    """Column names written as one string: ``"id user_id"`` -> ``("id", "user_id")``."""
    return tuple(words.split())


def product_row(p: Product) -> dict[str, Any]:
    return {
        "sku": p.sku,
        "title": p.title,
        "description": p.description,
        "price_amount": p.price.amount,
        "currency": p.price.currency,
        "kind": p.kind.value,
        "period": None if p.period is None else p.period.value,
        "active": int(p.active),
        "version": p.version,
        "created_at": ts_opt(p.created_at),
        "updated_at": ts_opt(p.updated_at),
    }


PRODUCT_COLUMNS = _names(
    "sku title description price_amount currency kind period active version created_at updated_at"
)


def product_from(r: Row | Sequence[Any]) -> Product:
    """A product from a mapping, or a row in :data:`PRODUCT_COLUMNS` order."""
    if isinstance(r, Mapping):
        r = [r[c] for c in PRODUCT_COLUMNS]
    sku, title, description, amount, currency, kind, period, active, version, created, updated = r
    return Product(
        sku=sku,
        title=title,
        description=description,
        price=Money.trusted(amount, currency),
        kind=_enum(ProductKind, kind, "product kind"),
        period=None if period is None else _enum(Period, period, "period"),
        active=bool(active),
        version=version,
        created_at=dt_opt(created),
        updated_at=dt_opt(updated),
    )


ORDER_COLUMNS = _names(
    "id user_id sku title kind period amount currency platform platform_transaction_id"
    " subscription_id status version created_at updated_at paid_at refunded_amount"
)


def order_row(o: Order) -> tuple[Any, ...]:
    """An order as a tuple in :data:`ORDER_COLUMNS` order."""
    return (
        o.id,
        o.user_id,
        o.sku,
        o.title,
        o.kind.value,
        None if o.period is None else o.period.value,
        o.amount.amount,
        o.amount.currency,
        o.platform.value,
        o.platform_transaction_id,
        o.subscription_id,
        o.status.value,
        o.version,
        ts(o.created_at),
        ts(o.updated_at),
        ts_opt(o.paid_at),
        o.refunded_amount,
    )


_ORDER_STATUS = {s.value: s for s in OrderStatus}
_KIND = {k.value: k for k in ProductKind}
_PLATFORM = {p.value: p for p in Platform}


_ORDER_VALUES = operator.attrgetter(*(f.name for f in attrs.fields(Order)))
"""An order's field values in the class's own field order, which is its ``__init__``'s."""


def clone_order(o: Order) -> Order:
    """A copy of an order (cheaper than ``attrs.evolve``; used by the write path's cache).

    The positional arguments come from the class's field list, so they follow any change to
    it: two ``str`` fields cannot swap. A field the constructor does not take positionally
    (``kw_only``, ``init=False``) makes this raise ``TypeError`` rather than copy it wrong.
    Keyword arguments would be as safe and about twice as slow on the write path.
    """
    return Order(*_ORDER_VALUES(o))


def order_from(r: Any) -> Order:
    """An order from a row in :data:`ORDER_COLUMNS` order (tuple or sequence); a row stored
    before orders had a refunded total (an old idempotent result) has refunded nothing."""
    if len(r) == len(ORDER_COLUMNS) - 1:
        r = (*r, 0)
    (
        id_,
        user_id,
        sku,
        title,
        kind,
        period,
        amount,
        currency,
        platform,
        txn,
        sub,
        status,
        version,
        created,
        updated,
        paid,
        refunded,
    ) = r
    try:
        return Order(
            id=id_,
            user_id=user_id,
            sku=sku,
            title=title,
            kind=_KIND[kind],
            period=None if period is None else Period(period),
            amount=Money.trusted(amount, currency),
            platform=_PLATFORM[platform],
            platform_transaction_id=txn,
            subscription_id=sub,
            status=_ORDER_STATUS[status],
            version=version,
            created_at=_fromiso(created),
            updated_at=_fromiso(updated),
            paid_at=None if paid is None else _fromiso(paid),
            refunded_amount=refunded,
        )
    except KeyError as exc:
        raise StoreError(f"order {id_} has an unknown stored value {exc.args[0]!r}") from None


def refund_row(f: RefundRequest) -> dict[str, Any]:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "user_id": f.user_id,
        "amount": f.amount.amount,
        "currency": f.amount.currency,
        "reason": f.reason,
        "status": f.status.value,
        "platform": f.platform.value,
        "version": f.version,
        "created_at": ts(f.created_at),
        "updated_at": ts(f.updated_at),
        "review_due_at": ts_opt(f.review_due_at),
        "decided_by": f.decided_by,
        "decided_at": ts_opt(f.decided_at),
        "decision_note": f.decision_note,
        "escalated": int(f.escalated),
        "attempts": f.attempts,
        "platform_refund_id": f.platform_refund_id,
        "last_error": f.last_error,
    }


def refund_from(r: Row) -> RefundRequest:
    return RefundRequest(
        id=r["id"],
        order_id=r["order_id"],
        user_id=r["user_id"],
        amount=Money(r["amount"], r["currency"]),
        reason=r["reason"],
        status=_enum(RefundStatus, r["status"], "refund status"),
        platform=_enum(Platform, r["platform"], "platform"),
        version=r["version"],
        created_at=_fromiso(r["created_at"]),
        updated_at=_fromiso(r["updated_at"]),
        review_due_at=dt_opt(r["review_due_at"]),
        decided_by=r["decided_by"],
        decided_at=dt_opt(r["decided_at"]),
        decision_note=r["decision_note"],
        escalated=bool(r["escalated"]),
        attempts=r["attempts"],
        platform_refund_id=r["platform_refund_id"],
        last_error=r["last_error"],
    )


def ticket_row(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "user_id": t.user_id,
        "order_id": t.order_id,
        "rating": t.rating,
        "body": t.body,
        "status": t.status.value,
        "version": t.version,
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
        "first_response_at": ts_opt(t.first_response_at),
        "resolved_at": ts_opt(t.resolved_at),
        "escalated": int(t.escalated),
        "reopen_count": t.reopen_count,
        "priority": t.priority.value,
        "level": t.level,
        "waiting_since": ts_opt(t.waiting_since),
        "first_response_due": ts_opt(t.first_response_due),
        "resolution_due": ts_opt(t.resolution_due),
        "reason": None if t.reason is None else t.reason.value,
    }


def ticket_from(r: Row, messages: list[TicketMessage] | None = None) -> Ticket:
    return Ticket(
        id=r["id"],
        user_id=r["user_id"],
        order_id=r["order_id"],
        rating=r["rating"],
        body=r["body"],
        status=_enum(TicketStatus, r["status"], "ticket status"),
        version=r["version"],
        created_at=_fromiso(r["created_at"]),
        updated_at=_fromiso(r["updated_at"]),
        first_response_at=dt_opt(r["first_response_at"]),
        resolved_at=dt_opt(r["resolved_at"]),
        escalated=bool(r["escalated"]),
        reopen_count=r["reopen_count"],
        messages=messages or [],
        priority=_enum(TicketPriority, r["priority"], "ticket priority"),
        level=r["level"],
        waiting_since=dt_opt(r["waiting_since"]),
        first_response_due=dt_opt(r["first_response_due"]),
        resolution_due=dt_opt(r["resolution_due"]),
        reason=None if r["reason"] is None else _enum(RatingReason, r["reason"], "rating reason"),
    )


def message_row(m: TicketMessage) -> dict[str, Any]:
    return {
        "ticket_id": m.ticket_id,
        "author_id": m.author_id,
        "role": m.role,
        "body": m.body,
        "created_at": ts(m.created_at),
    }


def message_from(r: Row) -> TicketMessage:
    return TicketMessage(
        ticket_id=r["ticket_id"],
        author_id=r["author_id"],
        role=r["role"],
        body=r["body"],
        created_at=_fromiso(r["created_at"]),
    )


AUDIT_COLUMNS = _names("aggregate aggregate_id event from_state to_state actor_id role at data")


def audit_row(e: AuditEvent) -> tuple[Any, ...]:
    """An audit event as a tuple in :data:`AUDIT_COLUMNS` order (no data: NULL)."""
    return (
        e.aggregate,
        e.aggregate_id,
        e.event,
        e.from_state,
        e.to_state,
        e.actor_id,
        e.role,
        ts(e.at),
        json.dumps(e.data) if e.data else None,
    )


def notification_from(r: Row) -> Notification:
    """An outbox row (``payload`` as JSON text, or already decoded by the driver)."""
    payload = r["payload"]
    return Notification(
        r["topic"],
        r["recipient"],
        json.loads(payload) if isinstance(payload, str) else payload,
        _fromiso(r["created_at"]),
        id=r["id"],
        attempts=r["attempts"],
        audience=_enum(Audience, r["audience"], "audience"),
    )


def audit_from(r: Row) -> AuditEvent:
    return AuditEvent(
        aggregate=r["aggregate"],
        aggregate_id=r["aggregate_id"],
        event=r["event"],
        from_state=r["from_state"],
        to_state=r["to_state"],
        actor_id=r["actor_id"],
        role=r["role"],
        at=_fromiso(r["at"]),
        data=json.loads(r["data"]) if r["data"] else {},
    )
