"""The SQLite store's subscription tables: the unit of work's writes and the reads."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import sqlite_utils

from iap_flow.adapters import subscription_rows as rows
from iap_flow.codec import ts
from iap_flow.domain.errors import ConcurrentModification
from iap_flow.domain.models import Subscription
from iap_flow.ports import HeldOrder, SubscriptionState


def migrate_5(db: sqlite_utils.Database) -> None:
    """Subscriptions, and the history of their states that entitlements at a past time read."""
    execute = db.execute
    execute(
        "CREATE TABLE subscriptions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
        " sku TEXT NOT NULL, platform TEXT NOT NULL, status TEXT NOT NULL,"
        " first_order_id TEXT NOT NULL UNIQUE, latest_order_id TEXT NOT NULL,"
        " period_start TEXT NOT NULL, period_end TEXT NOT NULL, grace_until TEXT,"
        " pending_sku TEXT, auto_renew INTEGER NOT NULL, version INTEGER NOT NULL,"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    execute("CREATE INDEX idx_subscriptions_user ON subscriptions (user_id)")
    execute(
        "CREATE TABLE subscription_periods (id INTEGER PRIMARY KEY,"
        " subscription_id TEXT NOT NULL, user_id TEXT NOT NULL, sku TEXT NOT NULL,"
        " status TEXT NOT NULL, latest_order_id TEXT NOT NULL, period_start TEXT NOT NULL,"
        " period_end TEXT NOT NULL, grace_until TEXT, at TEXT NOT NULL)"
    )
    execute("CREATE INDEX idx_subscription_periods_user ON subscription_periods (user_id, at)")


class SubscriptionWrites:
    """Mixed into the SQLite unit of work (which provides ``_conn``)."""

    _conn: sqlite3.Connection

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        return get(self._conn, subscription_id)

    def find_subscription(self, first_order_id: str) -> Subscription | None:
        found = self._conn.execute(
            rows.SELECT + " WHERE first_order_id = ?", (first_order_id,)
        ).fetchone()
        return None if found is None else rows.from_row(found)

    def insert_subscription(self, subscription: Subscription) -> None:
        self._conn.execute(rows.INSERT, rows.row(subscription))

    def update_subscription(self, subscription: Subscription, expected_version: int) -> None:
        cursor = self._conn.execute(rows.UPDATE, rows.update_params(subscription, expected_version))
        if cursor.rowcount != 1:
            raise ConcurrentModification(
                kind="subscription", id=subscription.id, expected_version=expected_version
            )

    def add_subscription_period(self, subscription: Subscription, at: datetime) -> None:
        self._conn.execute(rows.PERIOD_INSERT, rows.period_params(subscription, at))


def get(conn: sqlite3.Connection, subscription_id: str) -> Subscription | None:
    found = conn.execute(rows.SELECT + " WHERE id = ?", (subscription_id,)).fetchone()
    return None if found is None else rows.from_row(found)


def for_user(conn: sqlite3.Connection, user_id: str) -> list[Subscription]:
    found = conn.execute(rows.SELECT + " WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()
    return [rows.from_row(r) for r in found]


def sources(
    conn: sqlite3.Connection, user_id: str, at: datetime | None
) -> tuple[list[HeldOrder], list[SubscriptionState]]:
    if at is None:
        return (
            rows.held(conn.execute(rows.HELD_NOW, (user_id,))),
            rows.states(conn.execute(rows.SUBSCRIPTIONS_NOW, (user_id,))),
        )
    when = ts(at)
    return (
        rows.held(conn.execute(rows.HELD_AT, (user_id, when))),
        rows.latest_states(conn.execute(rows.SUBSCRIPTIONS_AT, (user_id, when))),
    )
