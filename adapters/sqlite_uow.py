"""The SQLite store's unit of work (one connection inside BEGIN IMMEDIATE) and the mapping of
every driver error to a typed :class:`~iap_flow.domain.errors.StoreError` with its real cause.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from iap_flow import codec
from iap_flow.adapters.sql import (
    MONEY_GUARDS,
    Dialect,
    Statements,
    check_json,
    check_text,
    paid_twice,
)
from iap_flow.adapters.sql_writes import SharedWrites
from iap_flow.adapters.sqlite_schema import OPEN
from iap_flow.adapters.sqlite_subscriptions import SubscriptionWrites
from iap_flow.codec import ts, ts_opt
from iap_flow.domain.errors import (
    ConcurrentModification,
    ConflictError,
    IapFlowError,
    InvalidInput,
    RefundNotAllowed,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreFault,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)
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

log = logging.getLogger("iap_flow.store")

DRIVER_ERRORS = (sqlite3.Error, OverflowError, UnicodeEncodeError, UnicodeDecodeError)
"""What the driver raises for a fault, a value it cannot bind or stored text it cannot read."""

_BY_CODE: dict[int, tuple[type[StoreFault], str]] = {
    sqlite3.SQLITE_BUSY: (StoreBusy, "is locked by another writer; nothing was written, retry"),
    sqlite3.SQLITE_LOCKED: (StoreBusy, "is locked by another writer; nothing was written, retry"),
    sqlite3.SQLITE_READONLY: (StoreReadOnly, "is read-only; nothing was written"),
    sqlite3.SQLITE_FULL: (StoreFull, "is on a full disk; nothing was written"),
    sqlite3.SQLITE_CORRUPT: (StoreCorrupt, "is damaged"),
    sqlite3.SQLITE_NOTADB: (StoreCorrupt, "is not an SQLite database"),
    sqlite3.SQLITE_CANTOPEN: (StoreUnavailable, "cannot be opened"),
    sqlite3.SQLITE_IOERR: (StoreFault, "had an I/O error"),
    sqlite3.SQLITE_NOMEM: (StoreFault, "ran out of memory"),
}


def translate(exc: BaseException, path: str) -> IapFlowError:
    """The iap-flow error for what the driver raised, keeping the driver's own message."""
    if isinstance(exc, IapFlowError):
        return exc
    if isinstance(exc, OverflowError):
        return InvalidInput(f"a number is too large to store (at most 2**63 - 1): {exc}")
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("text contains a lone surrogate, which cannot be stored")
    if isinstance(exc, UnicodeDecodeError):
        return StoreCorrupt(
            f"SQLite database {path!r} holds text that is not UTF-8: it is damaged", cause=exc
        )
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.IntegrityError) and getattr(exc, "sqlite_errorname", "") in (
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_UNIQUE",
    ):
        return ConflictError(f"already recorded by someone else: {exc}")
    if isinstance(exc, sqlite3.IntegrityError) and any(g in str(exc) for g in MONEY_GUARDS):
        return RefundNotAllowed(f"refunds may not exceed what was paid ({exc})", order_id="?")
    if code == sqlite3.SQLITE_CANTOPEN and _read_only_place(path):
        return StoreReadOnly(
            f"SQLite database {path!r} is on a read-only file system or folder (SQLite writes "
            f"its -wal and -shm files next to it); nothing was written ({exc})",
            cause=exc,
        )
    if code is not None and (code & 0xFF) in _BY_CODE:
        kind, what = _BY_CODE[code & 0xFF]
        return kind(f"SQLite database {path!r} {what} ({exc})", cause=exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return StoreError(f"SQLite store {path!r} is closed")
    return StoreFault(f"SQLite database {path!r}: {exc}", cause=exc)


def _read_only_place(path: str) -> bool:
    file = Path(path)
    return file.exists() and not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK))


def rollback(conn: sqlite3.Connection, path: str) -> None:
    """Roll back if a transaction is still open. SQLite ends some failed transactions itself
    (a full disk, an I/O error): then there is nothing to roll back, and the error that ended
    it is the one to report, not "cannot rollback - no transaction is active"."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # the first error is the one raised; this one is logged
        log.warning("ROLLBACK on %s failed after an error: %s", path, exc)


def seconds_between(start: str, end: str) -> str:
    """SQLite's seconds from ISO-text column ``start`` to ``end`` (for report SQL)."""
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


DIALECT = Dialect(
    mark="?",
    skip_locked="",
    row_compare=False,
    seconds=seconds_between,
    day=lambda col: f"substr({col}, 1, 10)",
)
STATEMENTS = Statements.of(DIALECT)
_ORDER_SELECT = STATEMENTS.order_select
_ORDER_INSERT = STATEMENTS.order_insert
_AUDIT_INSERT = STATEMENTS.audit_insert
_DEADLINE_INSERT = STATEMENTS.deadline_insert
_ORDER_UPDATE = (
    "UPDATE orders SET status = ?, version = ?, updated_at = ?, paid_at = ?,"
    " platform_transaction_id = ?, refunded_amount = ? WHERE id = ? AND version = ?"
)
_OUTBOX_INSERT = (
    "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until, claimed_by,"
    " audience) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteUnitOfWork(SharedWrites, SubscriptionWrites):
    """A :class:`~iap_flow.ports.UnitOfWork` on one SQLite connection inside BEGIN IMMEDIATE.

    Text that carries a caller's words is checked for NUL and lone surrogates before it is
    written, so SQLite refuses exactly what PostgreSQL cannot store.
    """

    def __init__(self, conn: sqlite3.Connection, claimer: Callable[[], str]) -> None:
        self._conn = conn
        self._x = self._w = conn.execute
        self._claimer = claimer

    STATEMENTS = STATEMENTS

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        return self._x(sql, params).fetchone()

    def _first(self, text: str, params: Sequence[Any]) -> Any:
        return self._x(text, params).fetchone()

    def _inserted(self, text: str, params: Sequence[Any]) -> bool:
        return bool(self._x(text, params).fetchall())

    def _check(self, cursor: sqlite3.Cursor, kind: str, id: str, version: int) -> None:
        if cursor.rowcount != 1:
            raise ConcurrentModification(kind=kind, id=id, expected_version=version)

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        check_text(row.values(), table)
        self._x(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )

    def _update(self, table: str, key: str, kind: str, row: dict[str, Any], expected: int) -> None:
        check_text(row.values(), table)
        sets = ", ".join(f"{k} = ?" for k in row if k != key)
        values = [v for k, v in row.items() if k != key]
        cursor = self._x(
            f"UPDATE {table} SET {sets} WHERE {key} = ? AND version = ?",
            (*values, row[key], expected),
        )
        self._check(cursor, kind, row[key], expected)

    # products
    def get_product(self, sku: str) -> Product | None:
        check_text((sku,), "sku")
        row = self._one(
            "SELECT " + ", ".join(codec.PRODUCT_COLUMNS) + " FROM products WHERE sku = ?", (sku,)
        )
        return None if row is None else codec.product_from(row)

    def insert_product(self, product: Product) -> None:
        self._insert("products", codec.product_row(product))

    def update_product(self, product: Product, expected_version: int) -> None:
        self._update("products", "sku", "product", codec.product_row(product), expected_version)

    # orders
    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        # lock: nothing to do, a write transaction holds the database's write lock
        check_text((order_id,), "order_id")
        row = self._one(_ORDER_SELECT + " WHERE id = ?", (order_id,))
        return None if row is None else codec.order_from(row)

    def find_order_by_transaction(self, platform: Platform, transaction_id: str) -> Order | None:
        check_text((transaction_id,), "transaction_id")
        row = self._one(
            _ORDER_SELECT + " WHERE platform = ? AND platform_transaction_id = ?",
            (platform.value, transaction_id),
        )
        return None if row is None else codec.order_from(row)

    def insert_order(self, order: Order) -> None:
        row = codec.order_row(order)
        check_text(row, "order")
        self._x(_ORDER_INSERT, row)

    def update_order(self, order: Order, expected_version: int) -> None:
        txn = order.platform_transaction_id
        if txn is not None:
            check_text((txn,), "platform_transaction_id")
        try:
            cursor = self._x(
                _ORDER_UPDATE,
                (
                    order.status.value,
                    order.version,
                    ts(order.updated_at),
                    ts_opt(order.paid_at),
                    txn,
                    order.refunded_amount,
                    order.id,
                    expected_version,
                ),
            )
        except sqlite3.IntegrityError as exc:
            if txn is None or "platform_transaction_id" not in str(exc):
                raise
            other = self.find_order_by_transaction(order.platform, txn)
            raise paid_twice(
                order.platform.value, txn, None if other is None else other.id
            ) from None
        self._check(cursor, "order", order.id, expected_version)

    # refunds
    def get_refund(self, refund_id: str) -> RefundRequest | None:
        check_text((refund_id,), "refund_id")
        found = dicts(self._x("SELECT * FROM refunds WHERE id = ?", (refund_id,)))
        return codec.refund_from(found[0]) if found else None

    def refunds_for_order(self, order_id: str) -> list[RefundRequest]:
        check_text((order_id,), "order_id")
        rows = dicts(self._x(STATEMENTS.refunds_of_order, (order_id,)))
        return [codec.refund_from(r) for r in rows]

    def insert_refund(self, refund: RefundRequest) -> None:
        try:
            self._insert("refunds", codec.refund_row(refund))
        except sqlite3.IntegrityError as exc:
            if "refunds.order_id" not in str(exc):
                raise
            raise RefundNotAllowed(
                f"order {refund.order_id} already has a refund in flight; one refund at a time",
                order_id=refund.order_id,
            ) from None

    def update_refund(self, refund: RefundRequest, expected_version: int) -> None:
        self._update("refunds", "id", "refund", codec.refund_row(refund), expected_version)

    # tickets
    def get_ticket(self, ticket_id: str) -> Ticket | None:
        check_text((ticket_id,), "ticket_id")
        return get_ticket(self._conn, ticket_id)

    def insert_ticket(self, ticket: Ticket) -> None:
        self._insert("tickets", codec.ticket_row(ticket))

    def update_ticket(self, ticket: Ticket, expected_version: int) -> None:
        self._update("tickets", "id", "ticket", codec.ticket_row(ticket), expected_version)

    def add_message(self, message: TicketMessage) -> None:
        self._insert("ticket_messages", codec.message_row(message))

    # audit, outbox, deadlines
    def add_audit(self, e: AuditEvent) -> None:
        row = codec.audit_row(e)
        check_text((e.actor_id, e.role), "actor")
        check_json(row[-1], "audit data")
        self._x(_AUDIT_INSERT, row)

    def add_notification(self, n: Notification, claimed_until: datetime | None) -> int:
        payload = json.dumps(n.payload)
        check_text((n.topic, n.recipient), "notification")
        check_json(payload, "notification payload")
        cursor = self._x(
            _OUTBOX_INSERT,
            (
                n.topic,
                n.recipient,
                payload,
                ts(n.created_at),
                ts_opt(claimed_until),
                None if claimed_until is None else self._claimer(),
                n.audience.value,
            ),
        )
        return int(cursor.lastrowid or 0)

    def add_deadline(self, d: Deadline) -> None:
        self._x(
            _DEADLINE_INSERT,
            (d.kind.value, d.subject_id, ts(d.due_at), ts_opt(d.remind_at), d.state.value),
        )

    def close_deadlines(self, subject_id: str, kinds: Sequence[DeadlineKind]) -> None:
        marks = ", ".join("?" * len(kinds))
        self._x(
            f"UPDATE deadlines SET state = 'done' WHERE subject_id = ? AND state IN {OPEN}"
            f" AND kind IN ({marks})",
            (subject_id, *[k.value for k in kinds]),
        )

    def due_deadlines(self, now: datetime, limit: int) -> list[Deadline]:
        rows = self._x(
            f"SELECT * FROM deadlines WHERE state IN {OPEN} AND due_at <= ? ORDER BY due_at LIMIT ?",
            (ts(now), limit),
        )
        return [deadline(r) for r in dicts(rows)]

    def due_reminders(self, now: datetime, limit: int) -> list[Deadline]:
        rows = self._x(
            "SELECT * FROM deadlines WHERE state = 'pending' AND remind_at IS NOT NULL"
            " AND remind_at <= ? AND due_at > ? ORDER BY remind_at LIMIT ?",
            (ts(now), ts(now), limit),
        )
        return [deadline(r) for r in dicts(rows)]

    def idempotency_finish(self, key: str, fingerprint: str, result: str) -> None:
        check_json(result, "result")
        cursor = self._x(STATEMENTS.idempotency_finish, (result, key, fingerprint))
        self._check(cursor, "idempotency key", key, 0)

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        check_text((key,), "idempotency_key")
        row = self._one(STATEMENTS.idempotency_get, (key,))
        if row is None:
            return None
        # '' is a claim without a result yet (the column predates claims and is NOT NULL)
        return IdempotencyRecord(row[0], row[1], row[2] or None, datetime.fromisoformat(row[3]))


def dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def get_ticket(conn: sqlite3.Connection, ticket_id: str) -> Ticket | None:
    found = dicts(conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)))
    if not found:
        return None
    messages = dicts(
        conn.execute("SELECT * FROM ticket_messages WHERE ticket_id = ? ORDER BY id", (ticket_id,))
    )
    return codec.ticket_from(found[0], [codec.message_from(m) for m in messages])


def deadline(r: dict[str, Any]) -> Deadline:
    return Deadline(
        kind=DeadlineKind(r["kind"]),
        subject_id=r["subject_id"],
        due_at=datetime.fromisoformat(r["due_at"]),
        remind_at=None if r["remind_at"] is None else datetime.fromisoformat(r["remind_at"]),
        state=DeadlineState(r["state"]),
        id=r["id"],
    )
