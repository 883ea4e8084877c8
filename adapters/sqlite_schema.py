"""The SQLite store's schema and its migrations, one function per schema version.

sqlite-utils builds the tables and indexes; each migration runs inside the store's
``BEGIN IMMEDIATE`` transaction, so two processes opening one file migrate once.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from iap_flow.adapters.sqlite_subscriptions import migrate_5 as migrate_subscriptions

SCHEMA_VERSION = 9
OPEN = "('pending', 'reminded')"
STAFF_RECIPIENTS_SQL = (
    "('support', 'support_agent', 'support_lead', 'product_manager', 'data_analyst', 'developer')"
)
"""Recipients of notifications written before they carried an audience that were staff."""


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE products (sku TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT NOT NULL,"
        " price_amount INTEGER NOT NULL, currency TEXT NOT NULL, kind TEXT NOT NULL, period TEXT,"
        " active INTEGER NOT NULL, version INTEGER NOT NULL, created_at TEXT, updated_at TEXT)"
    )
    db.execute(
        "CREATE TABLE orders (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, sku TEXT NOT NULL,"
        " title TEXT NOT NULL, kind TEXT NOT NULL, period TEXT, amount INTEGER NOT NULL,"
        " currency TEXT NOT NULL, platform TEXT NOT NULL, platform_transaction_id TEXT,"
        " subscription_id TEXT, status TEXT NOT NULL, version INTEGER NOT NULL,"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, paid_at TEXT) WITHOUT ROWID"
    )
    orders = db["orders"]
    assert isinstance(orders, sqlite_utils.db.Table)
    orders.create_index(["user_id", "status", "created_at", "id"])
    orders.create_index(["user_id", "created_at", "id"])
    orders.create_index(["status", "created_at"])
    orders.create_index(["created_at"])
    orders.create_index(["subscription_id"])
    db.execute(
        "CREATE UNIQUE INDEX idx_orders_platform_txn ON orders (platform, platform_transaction_id)"
        " WHERE platform_transaction_id IS NOT NULL"
    )
    db.execute(
        "CREATE TABLE refunds (id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id),"
        " user_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL, reason TEXT NOT NULL,"
        " status TEXT NOT NULL, platform TEXT NOT NULL, version INTEGER NOT NULL,"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, review_due_at TEXT, decided_by TEXT,"
        " decided_at TEXT, decision_note TEXT, escalated INTEGER NOT NULL DEFAULT 0,"
        " attempts INTEGER NOT NULL DEFAULT 0, platform_refund_id TEXT, last_error TEXT)"
    )
    refunds = db["refunds"]
    assert isinstance(refunds, sqlite_utils.db.Table)
    refunds.create_index(["order_id"])
    refunds.create_index(["status", "review_due_at"])
    refunds.create_index(["user_id", "created_at"])
    refunds.create_index(["created_at"])
    db.execute(
        "CREATE TABLE tickets (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, order_id TEXT,"
        " rating INTEGER NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, first_response_at TEXT,"
        " resolved_at TEXT, escalated INTEGER NOT NULL DEFAULT 0,"
        " reopen_count INTEGER NOT NULL DEFAULT 0)"
    )
    tickets = db["tickets"]
    assert isinstance(tickets, sqlite_utils.db.Table)
    tickets.create_index(["status", "created_at"])
    tickets.create_index(["user_id", "created_at"])
    tickets.create_index(["created_at"])
    db.execute(
        "CREATE TABLE ticket_messages (id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL,"
        " author_id TEXT NOT NULL, role TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_ticket_messages_ticket ON ticket_messages (ticket_id, id)")
    db.execute(
        "CREATE TABLE audit_events (id INTEGER PRIMARY KEY, aggregate TEXT NOT NULL,"
        " aggregate_id TEXT NOT NULL, event TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,"
        " actor_id TEXT NOT NULL, role TEXT NOT NULL, at TEXT NOT NULL, data TEXT)"
    )
    db.execute("CREATE INDEX idx_audit_subject ON audit_events (aggregate_id, id)")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, recipient TEXT NOT NULL,"
        " payload TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, claimed_until TEXT)"
    )
    db.execute("CREATE INDEX idx_outbox_pending ON outbox (id) WHERE delivered_at IS NULL")
    db.execute(
        "CREATE TABLE deadlines (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject_id TEXT NOT NULL,"
        " due_at TEXT NOT NULL, remind_at TEXT, state TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_deadlines_due ON deadlines (due_at) WHERE state IN " + OPEN)
    db.execute(
        "CREATE INDEX idx_deadlines_remind ON deadlines (remind_at)"
        " WHERE state = 'pending' AND remind_at IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX idx_deadlines_subject ON deadlines (subject_id) WHERE state IN " + OPEN
    )
    db.execute("CREATE INDEX idx_deadlines_kind_due ON deadlines (kind, due_at)")
    db.execute(
        "CREATE TABLE idempotency (key TEXT PRIMARY KEY, command TEXT NOT NULL,"
        " fingerprint TEXT NOT NULL, result TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE processed_events (source TEXT NOT NULL, event_id TEXT NOT NULL,"
        " created_at TEXT NOT NULL, PRIMARY KEY (source, event_id))"
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Escalations for the analysis report without scanning the whole audit trail: a partial
    index holds only ``escalate`` events, so the write path pays for it only on those."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_audit_escalations ON audit_events (at)"
        " WHERE event = 'escalate'"
    )


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Notifications carry their audience (buyer or staff) so that each process delivers only
    its own: an app backend the buyers', the Slack bot the staff's."""
    db.execute("ALTER TABLE outbox ADD COLUMN audience TEXT NOT NULL DEFAULT 'buyer'")
    db.execute(f"UPDATE outbox SET audience = 'staff' WHERE recipient IN {STAFF_RECIPIENTS_SQL}")
    db.execute("DROP INDEX IF EXISTS idx_outbox_pending")
    db.execute(
        "CREATE INDEX idx_outbox_pending ON outbox (audience, id) WHERE delivered_at IS NULL"
    )


IN_FLIGHT = "('requested', 'in_review', 'approved', 'submitted', 'failed')"
"""Refund states in which money may still move: at most one such refund per order."""


def _migrate_4(db: sqlite_utils.Database) -> None:
    """One refund in flight per order, guaranteed by the database: two requests for one order
    racing each other cannot both be accepted (and so cannot both be paid)."""
    db.execute(
        "CREATE UNIQUE INDEX refunds_one_in_flight ON refunds (order_id)"
        f" WHERE status IN {IN_FLIGHT}"
    )


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Outbox claims name their claimer, so a worker renews (and trusts) only its own lease."""
    db.execute("ALTER TABLE outbox ADD COLUMN claimed_by TEXT")


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Partial refunds: each order keeps its refunded total, which the database holds within
    what was paid; an order already refunded has refunded all of it. A refund that completes
    is refused if the order's completed refunds would then add up to more than was paid."""
    db.execute(
        "ALTER TABLE orders ADD COLUMN refunded_amount INTEGER NOT NULL DEFAULT 0"
        " CONSTRAINT orders_refunded_within_paid"
        " CHECK (refunded_amount >= 0 AND refunded_amount <= amount)"
    )
    db.execute("UPDATE orders SET refunded_amount = amount WHERE status = 'refunded'")
    db.execute(
        "CREATE TRIGGER refunds_within_paid BEFORE UPDATE OF status ON refunds"
        " WHEN NEW.status = 'refunded' AND OLD.status <> 'refunded' BEGIN"
        " SELECT RAISE(ABORT, 'refunds_within_paid: the order''s refunds exceed what was paid')"
        " WHERE NEW.amount + (SELECT COALESCE(SUM(amount), 0) FROM refunds"
        " WHERE order_id = NEW.order_id AND status = 'refunded' AND id <> NEW.id)"
        " > (SELECT amount FROM orders WHERE id = NEW.order_id); END"
    )


def _migrate_8(db: sqlite_utils.Database) -> None:
    """Tickets carry their service level: priority, escalation level, the targets' due times
    (kept across a wait on the buyer), when the wait began, and why a bad rating was given.
    Open tickets get their due times from their open deadlines."""
    for column in (
        "priority TEXT NOT NULL DEFAULT 'normal'",
        "level INTEGER NOT NULL DEFAULT 0",
        "waiting_since TEXT",
        "first_response_due TEXT",
        "resolution_due TEXT",
        "reason TEXT",
    ):
        db.execute(f"ALTER TABLE tickets ADD COLUMN {column}")
    db.execute("UPDATE tickets SET level = 1 WHERE escalated = 1")
    for kind, column in (
        ("ticket_first_response", "first_response_due"),
        ("ticket_resolution", "resolution_due"),
    ):
        db.execute(
            f"UPDATE tickets SET {column} = (SELECT MAX(d.due_at) FROM deadlines d"
            f" WHERE d.subject_id = tickets.id AND d.kind = '{kind}')"
        )


def _migrate_9(db: sqlite_utils.Database) -> None:
    """One record of a processed inbound event, with what processing it did: the store
    notifications' results move here from the idempotency table (keys ``webhook:<source>:<id>``),
    beside the Slack events' ids."""
    db.execute("ALTER TABLE processed_events ADD COLUMN result TEXT")
    db.execute(
        "INSERT OR IGNORE INTO processed_events (source, event_id, created_at, result)"
        " SELECT substr(k, 1, instr(k, ':') - 1), substr(k, instr(k, ':') + 1), created_at, result"
        " FROM (SELECT substr(key, 9) AS k, created_at, result FROM idempotency"
        "  WHERE command = 'inbound' AND key LIKE 'webhook:%' AND result <> '')"
        " WHERE instr(k, ':') > 1"
    )
    db.execute("DELETE FROM idempotency WHERE command = 'inbound' AND key LIKE 'webhook:%'")


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _migrate_1,
    2: _migrate_2,
    3: _migrate_3,
    4: _migrate_4,
    5: _migrate_5,
    6: migrate_subscriptions,
    7: _migrate_7,
    8: _migrate_8,
    9: _migrate_9,
}
