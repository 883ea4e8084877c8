"""The PostgreSQL store's subscription tables: the unit of work's writes and the reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

import psycopg

from iap_flow.adapters import subscription_rows as rows
from iap_flow.codec import ts
from iap_flow.domain.models import Subscription
from iap_flow.ports import HeldOrder, SubscriptionState

Conn = psycopg.Connection[tuple[Any, ...]]


@cache
def pg(sql: str) -> str:
    """The shared ``?``-style SQL with PostgreSQL's placeholders."""
    return sql.replace("?", "%s")


_UPDATE = (
    f"WITH u AS ({pg(rows.UPDATE)} RETURNING 1)"
    " SELECT expect_one((SELECT count(*) FROM u), %s, %s, %s)"
)


class SubscriptionWrites:
    """Mixed into the PostgreSQL unit of work (which provides ``conn`` and ``_q``)."""

    conn: Conn
    _q: Callable[..., Any]
    _lock_reads: bool

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        return get(self.conn, subscription_id, " FOR UPDATE" if self._lock_reads else "")

    def find_subscription(self, first_order_id: str) -> Subscription | None:
        found = self.conn.execute(
            pg(rows.SELECT + " WHERE first_order_id = ?"), (first_order_id,)
        ).fetchone()
        return None if found is None else rows.from_row(found)

    def insert_subscription(self, subscription: Subscription) -> None:
        self._q(pg(rows.INSERT), rows.row(subscription))

    def update_subscription(self, subscription: Subscription, expected_version: int) -> None:
        params = rows.update_params(subscription, expected_version)
        self._q(_UPDATE, (*params, "subscription", subscription.id, expected_version))

    def add_subscription_period(self, subscription: Subscription, at: datetime) -> None:
        self._q(pg(rows.PERIOD_INSERT), rows.period_params(subscription, at))


def get(conn: Conn, subscription_id: str, lock: str = "") -> Subscription | None:
    found = conn.execute(pg(rows.SELECT + " WHERE id = ?") + lock, (subscription_id,)).fetchone()
    return None if found is None else rows.from_row(found)


def for_user(conn: Conn, user_id: str) -> list[Subscription]:
    found = conn.execute(pg(rows.SELECT + " WHERE user_id = ? ORDER BY id"), (user_id,))
    return [rows.from_row(r) for r in found.fetchall()]


def sources(
    conn: Conn, user_id: str, at: datetime | None
) -> tuple[list[HeldOrder], list[SubscriptionState]]:
    if at is None:
        return (
            rows.held(conn.execute(pg(rows.HELD_NOW), (user_id,)).fetchall()),
            rows.states(conn.execute(pg(rows.SUBSCRIPTIONS_NOW), (user_id,)).fetchall()),
        )
    when = ts(at)
    return (
        rows.held(conn.execute(pg(rows.HELD_AT), (user_id, when)).fetchall()),
        rows.latest_states(conn.execute(pg(rows.SUBSCRIPTIONS_AT), (user_id, when)).fetchall()),
    )
