"""The PostgreSQL unit of work: writes queued in psycopg's pipeline, one round trip a change.

A transaction runs on one pooled connection in pipeline mode. Writes are queued, not waited
for; a read sends whatever is queued ahead of it (so it sees this transaction's writes) and
waits once. Version-checked UPDATEs raise in the server (``expect_one()``, SQLSTATE
``IF409``) when no row matched, so the COMMIT queued behind them never commits a lost
update: the error surfaces at the next sync and the store maps it to
:class:`~iap_flow.domain.errors.ConcurrentModification`. A command that reads once and writes a
state change costs two round trips (the read, then writes + COMMIT); one that decides on a
cached copy costs one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from iap_flow import codec
from iap_flow.adapters.sql import Dialect, Statements, check_json, check_text
from iap_flow.adapters.sql_writes import SharedWrites
from iap_flow.codec import ts, ts_opt
from iap_flow.domain.models import (
    AuditEvent,
    Deadline,
    DeadlineKind,
    DeadlineState,
    Notification,
    Order,
    Platform,
    Product,
    RefundRequest,
    Ticket,
    TicketMessage,
)
from iap_flow.ports import IdempotencyRecord

from .schema import OPEN
from .subscriptions import SubscriptionWrites

if TYPE_CHECKING:
    from .tx import OutboxIds

Conn = psycopg.Connection[tuple[Any, ...]]


def seconds_between(start: str, end: str) -> str:
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


def day_of(col: str) -> str:
    return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


DIALECT = Dialect(
    mark="%s",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    row_compare=True,
    seconds=seconds_between,
    day=day_of,
)
STATEMENTS = Statements.of(DIALECT)
ORDER_SELECT = STATEMENTS.order_select
PRODUCT_SELECT = "SELECT " + ", ".join(codec.PRODUCT_COLUMNS) + " FROM products"
DEADLINE_SELECT = "SELECT id, kind, subject_id, due_at, remind_at, state FROM deadlines"
_ORDER_INSERT = STATEMENTS.order_insert
_AUDIT_INSERT = STATEMENTS.audit_insert
_DEADLINE_INSERT = STATEMENTS.deadline_insert
_CHECKED = (
    "WITH u AS ({update} RETURNING 1) SELECT expect_one((SELECT count(*) FROM u), %s, %s, %s)"
)
_IDEMPOTENCY_FINISH = _CHECKED.format(update=STATEMENTS.idempotency_finish)
_ORDER_UPDATE = _CHECKED.format(
    update="UPDATE orders SET status = %s, version = %s, updated_at = %s, paid_at = %s,"
    " platform_transaction_id = %s, refunded_amount = %s WHERE id = %s AND version = %s"
)
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, topic, recipient, payload, created_at, claimed_until, claimed_by,"
    " audience) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# Sweepers share the due deadlines: each locks the rows it takes and skips those others hold,
# and takes a deadline only with its subject's advisory lock, so two deadlines of one ticket
# are never acted on by two workers at once (the second would lose the version check).
_DUE = (
    f"{DEADLINE_SELECT} WHERE state IN {OPEN} AND due_at <= %s"
    " AND pg_try_advisory_xact_lock(hashtextextended(subject_id, 2))"
    " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED"
)
_REMIND = (
    f"{DEADLINE_SELECT} WHERE state = 'pending' AND remind_at IS NOT NULL AND remind_at <= %s"
    " AND due_at > %s ORDER BY remind_at LIMIT %s"
)


@cache
def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) VALUES (%s, ...)``, built once per column list."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


@cache
def update_sql(table: str, key: str, columns: tuple[str, ...]) -> str:
    """A version-checked UPDATE of every column but ``key``, raising IF409 on no match."""
    sets = ", ".join(f"{c} = %s" for c in columns if c != key)
    return _CHECKED.format(update=f"UPDATE {table} SET {sets} WHERE {key} = %s AND version = %s")


def deadline_from(r: Sequence[Any]) -> Deadline:
    """A deadline from a row in :data:`DEADLINE_SELECT` order."""
    return Deadline(
        kind=DeadlineKind(r[1]),
        subject_id=r[2],
        due_at=datetime.fromisoformat(r[3]),
        remind_at=None if r[4] is None else datetime.fromisoformat(r[4]),
        state=DeadlineState(r[5]),
        id=r[0],
    )


def get_ticket(conn: Conn, ticket_id: str, lock: str = "") -> Ticket | None:
    """A ticket and its messages (in a transaction's pipeline both go in one round trip)."""
    head = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM tickets WHERE id = %s" + lock, (ticket_id,)
    )
    body = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM ticket_messages WHERE ticket_id = %s ORDER BY id", (ticket_id,)
    )
    row = head.fetchone()
    messages = body.fetchall()
    return (
        None if row is None else codec.ticket_from(row, [codec.message_from(m) for m in messages])
    )


def get_refund(conn: Conn, refund_id: str, lock: str = "") -> RefundRequest | None:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM refunds WHERE id = %s" + lock, (refund_id,)
    )
    found = row.fetchone()
    return None if found is None else codec.refund_from(found)


def get_order(conn: Conn, order_id: str, lock: str = "") -> Order | None:
    row = conn.execute(ORDER_SELECT + " WHERE id = %s" + lock, (order_id,)).fetchone()
    return None if row is None else codec.order_from(row)


def get_product(conn: Conn, sku: str) -> Product | None:
    row = conn.execute(PRODUCT_SELECT + " WHERE sku = %s", (sku,)).fetchone()
    return None if row is None else codec.product_from(row)


_FOR_UPDATE = " FOR UPDATE"


class PgUnitOfWork(SharedWrites, SubscriptionWrites):
    """A :class:`~iap_flow.ports.UnitOfWork` on one connection inside BEGIN ... COMMIT."""

    def __init__(self, conn: Conn, outbox_ids: OutboxIds, claimer: Callable[[], str]) -> None:
        self.conn = conn
        self.explicit = False
        """True once BEGIN was sent (a nested block); until then the pipeline's Sync commits."""
        self._ids = outbox_ids
        self._claimer = claimer
        self._cur = conn.cursor()
        self._q: Callable[..., Any] = self._cur.execute
        self._w = self._q
        # Once a transaction took due deadlines (the sweep), its reads lock what they read: the
        # sweep then decides on the latest state, and a command racing it gets the conflict.
        self._lock_reads = False

    STATEMENTS = STATEMENTS

    def _first(self, text: str, params: Sequence[Any]) -> Any:
        return self.conn.execute(text, params).fetchone()

    def _inserted(self, text: str, params: Sequence[Any]) -> bool:
        return self.conn.execute(text, params).fetchone() is not None

    def run(self, sql: str) -> None:
        """Queue a statement without parameters (BEGIN, COMMIT)."""
        self._q(sql)

    # products
    def get_product(self, sku: str) -> Product | None:
        return get_product(self.conn, sku)

    def insert_product(self, product: Product) -> None:
        row = codec.product_row(product)
        check_text(row.values(), "products")
        self._q(insert_sql("products", tuple(row)), tuple(row.values()))

    def update_product(self, product: Product, expected_version: int) -> None:
        self._update("products", "sku", "product", codec.product_row(product), expected_version)

    def _update(self, table: str, key: str, kind: str, row: dict[str, Any], expected: int) -> None:
        check_text(row.values(), table)
        values = [v for k, v in row.items() if k != key]
        self._q(
            update_sql(table, key, tuple(row)),
            (*values, row[key], expected, kind, row[key], expected),
        )

    # orders
    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        check_text((order_id,), "order_id")
        return get_order(self.conn, order_id, _FOR_UPDATE if lock or self._lock_reads else "")

    def find_order_by_transaction(self, platform: Platform, transaction_id: str) -> Order | None:
        check_text((transaction_id,), "transaction_id")
        row = self.conn.execute(
            ORDER_SELECT + " WHERE platform = %s AND platform_transaction_id = %s",
            (platform.value, transaction_id),
        ).fetchone()
        return None if row is None else codec.order_from(row)

    def insert_order(self, order: Order) -> None:
        row = codec.order_row(order)
        check_text(row, "order")
        self._q(_ORDER_INSERT, row)

    def update_order(self, order: Order, expected_version: int) -> None:
        if order.platform_transaction_id is not None:
            check_text((order.platform_transaction_id,), "platform_transaction_id")
        self._q(
            _ORDER_UPDATE,
            (
                order.status.value,
                order.version,
                ts(order.updated_at),
                ts_opt(order.paid_at),
                order.platform_transaction_id,
                order.refunded_amount,
                order.id,
                expected_version,
                "order",
                order.id,
                expected_version,
            ),
        )

    # refunds
    def get_refund(self, refund_id: str) -> RefundRequest | None:
        check_text((refund_id,), "refund_id")
        return get_refund(self.conn, refund_id, _FOR_UPDATE if self._lock_reads else "")

    def refunds_for_order(self, order_id: str) -> list[RefundRequest]:
        check_text((order_id,), "order_id")
        cur = self.conn.cursor(row_factory=dict_row).execute(
            STATEMENTS.refunds_of_order, (order_id,)
        )
        return [codec.refund_from(r) for r in cur.fetchall()]

    def insert_refund(self, refund: RefundRequest) -> None:
        row = codec.refund_row(refund)
        check_text(row.values(), "refunds")
        self._q(insert_sql("refunds", tuple(row)), tuple(row.values()))

    def update_refund(self, refund: RefundRequest, expected_version: int) -> None:
        self._update("refunds", "id", "refund", codec.refund_row(refund), expected_version)

    # tickets
    def get_ticket(self, ticket_id: str) -> Ticket | None:
        check_text((ticket_id,), "ticket_id")
        return get_ticket(self.conn, ticket_id, _FOR_UPDATE if self._lock_reads else "")

    def insert_ticket(self, ticket: Ticket) -> None:
        row = codec.ticket_row(ticket)
        check_text(row.values(), "tickets")
        self._q(insert_sql("tickets", tuple(row)), tuple(row.values()))

    def update_ticket(self, ticket: Ticket, expected_version: int) -> None:
        self._update("tickets", "id", "ticket", codec.ticket_row(ticket), expected_version)

    def add_message(self, message: TicketMessage) -> None:
        row = codec.message_row(message)
        check_text(row.values(), "ticket_messages")
        self._q(insert_sql("ticket_messages", tuple(row)), tuple(row.values()))

    # audit, outbox, deadlines
    def add_audit(self, e: AuditEvent) -> None:
        row = codec.audit_row(e)
        check_text((e.actor_id, e.role), "actor")
        check_json(row[-1], "audit data")
        self._q(_AUDIT_INSERT, row)

    def add_notification(self, n: Notification, claimed_until: datetime | None) -> int:
        payload = json.dumps(n.payload)
        check_text((n.topic, n.recipient), "notification")
        check_json(payload, "notification payload")
        note_id = self._ids.next(self.conn)
        self._q(
            _OUTBOX_INSERT,
            (
                note_id,
                n.topic,
                n.recipient,
                payload,
                ts(n.created_at),
                ts_opt(claimed_until),
                None if claimed_until is None else self._claimer(),
                n.audience.value,
            ),
        )
        return note_id

    def add_deadline(self, d: Deadline) -> None:
        self._q(
            _DEADLINE_INSERT,
            (d.kind.value, d.subject_id, ts(d.due_at), ts_opt(d.remind_at), d.state.value),
        )

    def close_deadlines(self, subject_id: str, kinds: Sequence[DeadlineKind]) -> None:
        self._q(
            f"UPDATE deadlines SET state = 'done' WHERE subject_id = %s AND state IN {OPEN}"
            " AND kind = ANY(%s)",
            (subject_id, [k.value for k in kinds]),
        )

    def due_deadlines(self, now: datetime, limit: int) -> list[Deadline]:
        self._lock_reads = True
        rows = self.conn.execute(_DUE, (ts(now), limit)).fetchall()
        return [deadline_from(r) for r in rows]

    def due_reminders(self, now: datetime, limit: int) -> list[Deadline]:
        at = ts(now)
        rows = self.conn.execute(_REMIND + " FOR UPDATE SKIP LOCKED", (at, at, limit)).fetchall()
        return [deadline_from(r) for r in rows]

    def idempotency_finish(self, key: str, fingerprint: str, result: str) -> None:
        check_json(result, "result")
        self._q(_IDEMPOTENCY_FINISH, (result, key, fingerprint, "idempotency key", key, 0))

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        check_text((key,), "idempotency_key")
        # Serialise commands sharing a key: a second one waits for the first to commit and
        # then finds its result (the lock is queued with the read: still one round trip).
        self._q("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (key,))
        row = self.conn.execute(STATEMENTS.idempotency_get, (key,)).fetchone()
        if row is None:
            return None
        # '' is a claim without a result yet (the column predates claims and is NOT NULL)
        at = row[3] if isinstance(row[3], datetime) else datetime.fromisoformat(row[3])
        return IdempotencyRecord(row[0], row[1], row[2] or None, at)
