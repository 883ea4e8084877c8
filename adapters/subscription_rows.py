"""Subscriptions as rows, and the entitlement lookups, shared by the SQLite and PostgreSQL
stores (SQL written with ``?`` placeholders; the PostgreSQL store swaps them for ``%s``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from iap_flow.codec import dt_opt, ts, ts_opt
from iap_flow.domain.models import (
    OrderStatus,
    Platform,
    ProductKind,
    Subscription,
    SubscriptionStatus,
)
from iap_flow.ports import HeldOrder, SubscriptionState

COLUMNS = (
    "id",
    "user_id",
    "sku",
    "platform",
    "status",
    "first_order_id",
    "latest_order_id",
    "period_start",
    "period_end",
    "grace_until",
    "pending_sku",
    "auto_renew",
    "version",
    "created_at",
    "updated_at",
)
SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM subscriptions"
INSERT = (
    f"INSERT INTO subscriptions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
UPDATE_SET = ", ".join(f"{c} = ?" for c in COLUMNS[1:])
UPDATE = f"UPDATE subscriptions SET {UPDATE_SET} WHERE id = ? AND version = ?"
PERIOD_INSERT = (
    "INSERT INTO subscription_periods (subscription_id, user_id, sku, status, latest_order_id,"
    " period_start, period_end, grace_until, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
GRANTING = "('paid', 'delivered', 'completed', 'partially_refunded')"
"""Order states in which an order grants what it bought (not awaiting delivery; a partial
refund keeps what the order granted)."""

HELD_NOW = (
    "SELECT id, sku, kind, status FROM orders WHERE user_id = ? AND status IN "
    + GRANTING
    + " AND kind <> 'subscription'"
)
SUBSCRIPTIONS_NOW = (
    "SELECT id, sku, status, latest_order_id, period_end, grace_until FROM subscriptions"
    " WHERE user_id = ?"
)
HELD_AT = (
    "SELECT o.id, o.sku, o.kind, o.status, (SELECT min(a.at) FROM audit_events a"
    " WHERE a.aggregate_id = o.id AND a.event = 'refund') FROM orders o"
    " WHERE o.user_id = ? AND o.kind <> 'subscription' AND o.paid_at IS NOT NULL"
    " AND o.paid_at <= ?"
)
SUBSCRIPTIONS_AT = (
    "SELECT subscription_id, sku, status, latest_order_id, period_end, grace_until"
    " FROM subscription_periods WHERE user_id = ? AND at <= ? ORDER BY id"
)


def row(s: Subscription) -> tuple[Any, ...]:
    """A subscription as a tuple in :data:`COLUMNS` order."""
    return (
        s.id,
        s.user_id,
        s.sku,
        s.platform.value,
        s.status.value,
        s.first_order_id,
        s.latest_order_id,
        ts(s.period_start),
        ts(s.period_end),
        ts_opt(s.grace_until),
        s.pending_sku,
        1 if s.auto_renew else 0,
        s.version,
        ts(s.created_at),
        ts(s.updated_at),
    )


def update_params(s: Subscription, expected_version: int) -> tuple[Any, ...]:
    values = row(s)
    return (*values[1:], values[0], expected_version)


def period_params(s: Subscription, at: datetime) -> tuple[Any, ...]:
    return (
        s.id,
        s.user_id,
        s.sku,
        s.status.value,
        s.latest_order_id,
        ts(s.period_start),
        ts(s.period_end),
        ts_opt(s.grace_until),
        ts(at),
    )


def _dt(value: Any) -> datetime:
    parsed = dt_opt(str(value))
    assert parsed is not None
    return parsed


def from_row(r: Sequence[Any]) -> Subscription:
    """A subscription from a row in :data:`COLUMNS` order."""
    return Subscription(
        id=r[0],
        user_id=r[1],
        sku=r[2],
        platform=Platform(r[3]),
        status=SubscriptionStatus(r[4]),
        first_order_id=r[5],
        latest_order_id=r[6],
        period_start=_dt(r[7]),
        period_end=_dt(r[8]),
        grace_until=dt_opt(r[9]),
        pending_sku=r[10],
        auto_renew=bool(r[11]),
        version=int(r[12]),
        created_at=_dt(r[13]),
        updated_at=_dt(r[14]),
    )


_KIND = {k.value: k for k in ProductKind}
_ORDER_STATUS = {s.value: s for s in OrderStatus}
_SUB_STATUS = {s.value: s for s in SubscriptionStatus}


def held(rows: Iterable[Sequence[Any]]) -> list[HeldOrder]:
    return [
        HeldOrder(
            r[0],
            r[1],
            _KIND[r[2]],
            _ORDER_STATUS[r[3]],
            dt_opt(r[4]) if len(r) > 4 else None,
        )
        for r in rows
    ]


def states(rows: Iterable[Sequence[Any]]) -> list[SubscriptionState]:
    return [
        SubscriptionState(r[0], r[1], _SUB_STATUS[r[2]], r[3], _dt(r[4]), dt_opt(r[5]))
        for r in rows
    ]


def latest_states(rows: Iterable[Sequence[Any]]) -> list[SubscriptionState]:
    """The last history row of each subscription (rows oldest first)."""
    last: dict[str, Sequence[Any]] = {}
    for r in rows:
        last[r[0]] = r
    return states(last.values())
