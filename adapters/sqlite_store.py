"""The embedded default store: SQLite through sqlite-utils, WAL, prepared SQL on the write path.

Schema and migrations use sqlite-utils; the hot path uses plain parameterised SQL on the same
connection (sqlite3 caches the prepared statements), because sqlite-utils' convenience calls
cost several times a whole write. Writers take the lock up front (``BEGIN IMMEDIATE``), so two
processes deciding the same refund queue up and the second sees the first's decision.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from iap_flow import codec
from iap_flow.adapters import sqlite_subscriptions
from iap_flow.adapters.sql import render
from iap_flow.adapters.sqlite_schema import MIGRATIONS, OPEN, SCHEMA_VERSION
from iap_flow.adapters.sqlite_subscriptions import SubscriptionWrites
from iap_flow.codec import ts, ts_opt
from iap_flow.domain.errors import (
    ConcurrentModification,
    InvalidInput,
    RefundNotAllowed,
    StoreError,
)
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Deadline,
    DeadlineKind,
    DeadlineState,
    Notification,
    Order,
    Platform,
    Product,
    RefundRequest,
    Subscription,
    Ticket,
    TicketMessage,
)
from iap_flow.ports import HeldOrder, IdempotencyRecord, OrderQuery, SubscriptionState

_PRODUCT_SELECT = "SELECT " + ", ".join(codec.PRODUCT_COLUMNS) + " FROM products WHERE sku = ?"
_ORDER_SELECT = "SELECT " + ", ".join(codec.ORDER_COLUMNS) + " FROM orders"
_ORDER_BY_ID = _ORDER_SELECT + " WHERE id = ?"
_ORDER_INSERT = (
    "INSERT INTO orders ("
    + ", ".join(codec.ORDER_COLUMNS)
    + ") VALUES ("
    + ", ".join("?" * len(codec.ORDER_COLUMNS))
    + ")"
)
_ORDER_UPDATE = (
    "UPDATE orders SET status = ?, version = ?, updated_at = ?, paid_at = ?,"
    " platform_transaction_id = ? WHERE id = ? AND version = ?"
)
_AUDIT_INSERT = (
    "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state, actor_id,"
    " role, at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _Tx(SubscriptionWrites):
    """A :class:`~iap_flow.ports.UnitOfWork` on one SQLite connection inside BEGIN IMMEDIATE."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._x = conn.execute

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        return self._x(sql, params).fetchone()

    def _check(self, cursor: sqlite3.Cursor, kind: str, id: str, version: int) -> None:
        if cursor.rowcount != 1:
            raise ConcurrentModification(kind=kind, id=id, expected_version=version)

    # products
    def get_product(self, sku: str) -> Product | None:
        row = self._x(_PRODUCT_SELECT, (sku,)).fetchone()
        return None if row is None else codec.product_from(row)

    def insert_product(self, product: Product) -> None:
        row = codec.product_row(product)
        cols = ", ".join(row)
        self._x(
            f"INSERT INTO products ({cols}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )

    def update_product(self, product: Product, expected_version: int) -> None:
        row = codec.product_row(product)
        sets = ", ".join(f"{k} = ?" for k in row if k != "sku")
        values = [v for k, v in row.items() if k != "sku"]
        cursor = self._x(
            f"UPDATE products SET {sets} WHERE sku = ? AND version = ?",
            (*values, product.sku, expected_version),
        )
        self._check(cursor, "product", product.sku, expected_version)

    # orders
    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        # lock: nothing to do, a write transaction holds the database's write lock
        row = self._x(_ORDER_BY_ID, (order_id,)).fetchone()
        return None if row is None else codec.order_from(row)

    def find_order_by_transaction(self, platform: Platform, transaction_id: str) -> Order | None:
        row = self._one(
            _ORDER_SELECT + " WHERE platform = ? AND platform_transaction_id = ?",
            (platform.value, transaction_id),
        )
        return None if row is None else codec.order_from(row)

    def insert_order(self, order: Order) -> None:
        self._x(_ORDER_INSERT, codec.order_row(order))

    def update_order(self, order: Order, expected_version: int) -> None:
        cursor = self._x(
            _ORDER_UPDATE,
            (
                order.status.value,
                order.version,
                ts(order.updated_at),
                ts_opt(order.paid_at),
                order.platform_transaction_id,
                order.id,
                expected_version,
            ),
        )
        self._check(cursor, "order", order.id, expected_version)

    # refunds
    def get_refund(self, refund_id: str) -> RefundRequest | None:
        found = _dicts(self._x("SELECT * FROM refunds WHERE id = ?", (refund_id,)))
        return codec.refund_from(found[0]) if found else None

    def refunds_for_order(self, order_id: str) -> list[RefundRequest]:
        rows = _dicts(self._x("SELECT * FROM refunds WHERE order_id = ? ORDER BY id", (order_id,)))
        return [codec.refund_from(r) for r in rows]

    def insert_refund(self, refund: RefundRequest) -> None:
        try:
            _insert(self._conn, "refunds", codec.refund_row(refund))
        except sqlite3.IntegrityError as exc:
            if "refunds.order_id" not in str(exc):
                raise
            raise RefundNotAllowed(
                f"order {refund.order_id} already has a refund in flight; one refund at a time",
                order_id=refund.order_id,
            ) from None

    def update_refund(self, refund: RefundRequest, expected_version: int) -> None:
        self._check(
            _update(self._conn, "refunds", codec.refund_row(refund), expected_version),
            "refund",
            refund.id,
            expected_version,
        )

    # tickets
    def get_ticket(self, ticket_id: str) -> Ticket | None:
        return _get_ticket(self._conn, ticket_id)

    def insert_ticket(self, ticket: Ticket) -> None:
        _insert(self._conn, "tickets", codec.ticket_row(ticket))

    def update_ticket(self, ticket: Ticket, expected_version: int) -> None:
        self._check(
            _update(self._conn, "tickets", codec.ticket_row(ticket), expected_version),
            "ticket",
            ticket.id,
            expected_version,
        )

    def add_message(self, message: TicketMessage) -> None:
        _insert(self._conn, "ticket_messages", codec.message_row(message))

    # audit, outbox, deadlines
    def add_audit(self, e: AuditEvent) -> None:
        self._x(_AUDIT_INSERT, codec.audit_row(e))

    def add_notification(self, n: Notification, claimed_until: datetime | None) -> int:
        cursor = self._x(
            "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until, audience)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                n.topic,
                n.recipient,
                json.dumps(n.payload),
                ts(n.created_at),
                ts_opt(claimed_until),
                n.audience.value,
            ),
        )
        return int(cursor.lastrowid or 0)

    def add_deadline(self, d: Deadline) -> None:
        self._x(
            "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state) VALUES (?, ?, ?, ?, ?)",
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
        return [_deadline(r) for r in _dicts(rows)]

    def due_reminders(self, now: datetime, limit: int) -> list[Deadline]:
        rows = self._x(
            "SELECT * FROM deadlines WHERE state = 'pending' AND remind_at IS NOT NULL"
            " AND remind_at <= ? AND due_at > ? ORDER BY remind_at LIMIT ?",
            (ts(now), ts(now), limit),
        )
        return [_deadline(r) for r in _dicts(rows)]

    def set_deadline_state(self, deadline_id: int, state: DeadlineState) -> None:
        self._x("UPDATE deadlines SET state = ? WHERE id = ?", (state.value, deadline_id))

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        row = self._one(
            "SELECT command, fingerprint, result, created_at FROM idempotency WHERE key = ?",
            (key,),
        )
        if row is None:
            return None
        # '' is a claim without a result yet (the column predates claims and is NOT NULL)
        return IdempotencyRecord(row[0], row[1], row[2] or None, datetime.fromisoformat(row[3]))

    def idempotency_claim(self, key: str, command: str, fingerprint: str, at: datetime) -> None:
        self._x(
            "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
            " VALUES (?, ?, ?, '', ?) ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at"
            " WHERE idempotency.result = ''",
            (key, command, fingerprint, ts(at)),
        )

    def idempotency_put(
        self, key: str, command: str, fingerprint: str, result: str, at: datetime
    ) -> None:
        self._x(
            "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET result = excluded.result"
            " WHERE idempotency.result = ''",
            (key, command, fingerprint, result, ts(at)),
        )

    def idempotency_release(self, key: str) -> None:
        self._x("DELETE FROM idempotency WHERE key = ? AND result = ''", (key,))

    def remember_event(self, source: str, event_id: str, at: datetime) -> bool:
        """Record an inbound event id (webhook, Slack retry); False if it was seen before."""
        cursor = self._x(
            "INSERT OR IGNORE INTO processed_events (source, event_id, created_at) VALUES (?, ?, ?)",
            (source, event_id, ts(at)),
        )
        return cursor.rowcount == 1


class _Transaction:
    """The unit of work's context manager (a class: it runs on every command)."""

    __slots__ = ("_nested", "_store")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._nested: AbstractContextManager[Any] | None = None

    def __enter__(self) -> _Tx:
        store = self._store
        store._lock.acquire()
        try:
            if store._conn.in_transaction:
                self._nested = store.db.atomic()
                self._nested.__enter__()
            else:
                store._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            store._lock.release()
            raise
        return store._tx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        store = self._store
        try:
            if self._nested is not None:
                self._nested.__exit__(exc_type, exc, tb)
            elif exc_type is None:
                try:
                    store._conn.execute("COMMIT")
                except BaseException:
                    store._conn.execute("ROLLBACK")
                    raise
            else:
                store._conn.execute("ROLLBACK")
        finally:
            store._lock.release()


class SQLiteStore:
    """The SQLite store. ``SQLiteStore.from_url("sqlite:///orders.db")``; ``sqlite://`` is memory.

    One connection per store, guarded by a lock, so one store may be shared by threads.
    Several processes may open the same file: writers queue on SQLite's lock (busy timeout).
    """

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # SQLite's default page cache is 2 MB: too small for indexes over millions of orders.
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA mmap_size = 268435456")
        conn.execute("PRAGMA foreign_keys = ON")
        self._tx = _Tx(conn)
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        rest = url.split("://", 1)[1]
        if rest in ("", "/", "/:memory:"):
            return cls(":memory:")
        if not rest.startswith("/"):
            raise InvalidInput(
                f"SQLite URL needs three slashes for a file: sqlite:///orders.db, got {url!r}",
                field="url",
            )
        path = rest[1:]
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise InvalidInput(
                f"folder {parent} for the SQLite database does not exist", field="url"
            )
        return cls(path)

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
                )
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                current = int(row[0]) if row else 0
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {current}, newer than this iap-flow "
                        f"({SCHEMA_VERSION}); upgrade iap-flow"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[version](self.db)
                    self._conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(version),),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT; rolls back on any error. A nested call becomes a
        savepoint through sqlite-utils' ``Database.atomic()``."""
        return _Transaction(self)

    # reads
    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return _dicts(self._conn.execute(sql, params))

    def get_order(self, order_id: str) -> Order | None:
        with self._lock:
            return self._tx.get_order(order_id)

    def get_refund(self, refund_id: str) -> RefundRequest | None:
        with self._lock:
            return self._tx.get_refund(refund_id)

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        with self._lock:
            return _get_ticket(self._conn, ticket_id)

    def get_product(self, sku: str) -> Product | None:
        with self._lock:
            return self._tx.get_product(sku)

    def list_products(self, active_only: bool) -> list[Product]:
        where = " WHERE active = 1" if active_only else ""
        return [
            codec.product_from(r) for r in self._read(f"SELECT * FROM products{where} ORDER BY sku")
        ]

    def query_orders(self, query: OrderQuery) -> tuple[list[Order], str | None]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.user_id is not None:
            clauses.append("user_id = ?")
            params.append(query.user_id)
        if query.subscription_id is not None:
            clauses.append("(id = ? OR subscription_id = ?)")
            params.extend([query.subscription_id, query.subscription_id])
        if query.statuses:
            clauses.append(f"status IN ({', '.join('?' * len(query.statuses))})")
            params.extend(query.statuses)
        if query.since is not None:
            clauses.append("created_at >= ?")
            params.append(ts(query.since))
        if query.until is not None:
            clauses.append("created_at < ?")
            params.append(ts(query.until))
        if query.cursor is not None:
            created, _, last_id = query.cursor.partition("|")
            if not last_id:
                raise InvalidInput("cursor is not one this store gave out", field="cursor")
            clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend([created, created, last_id])
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"{_ORDER_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(query.limit + 1)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        orders = [codec.order_from(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        cursor = f"{ts(orders[-1].created_at)}|{orders[-1].id}" if more and orders else None
        return orders, cursor

    def refunds(
        self, statuses: Sequence[str], user_id: str | None, limit: int
    ) -> list[RefundRequest]:
        clauses, params = _status_user(statuses, user_id)
        rows = self._read(
            f"SELECT * FROM refunds{clauses} ORDER BY review_due_at IS NULL, review_due_at, id LIMIT ?",
            [*params, limit],
        )
        return [codec.refund_from(r) for r in rows]

    def tickets(self, statuses: Sequence[str], user_id: str | None, limit: int) -> list[Ticket]:
        clauses, params = _status_user(statuses, user_id)
        rows = self._read(
            f"SELECT id FROM tickets{clauses} ORDER BY created_at, id LIMIT ?", [*params, limit]
        )
        with self._lock:
            return [t for r in rows if (t := _get_ticket(self._conn, r["id"])) is not None]

    def history(self, aggregate_id: str) -> list[AuditEvent]:
        rows = self._read(
            "SELECT * FROM audit_events WHERE aggregate_id = ? ORDER BY id", (aggregate_id,)
        )
        return [codec.audit_from(r) for r in rows]

    def pending_deadlines(self, subject_id: str | None) -> list[Deadline]:
        if subject_id is None:
            rows = self._read(f"SELECT * FROM deadlines WHERE state IN {OPEN} ORDER BY due_at")
        else:
            rows = self._read(
                f"SELECT * FROM deadlines WHERE state IN {OPEN} AND subject_id = ? ORDER BY due_at",
                (subject_id,),
            )
        return [_deadline(r) for r in rows]

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return sqlite_subscriptions.get(self._conn, subscription_id)

    def subscriptions_for_user(self, user_id: str) -> list[Subscription]:
        with self._lock:
            return sqlite_subscriptions.for_user(self._conn, user_id)

    def entitlement_sources(
        self, user_id: str, at: datetime | None
    ) -> tuple[list[HeldOrder], list[SubscriptionState]]:
        with self._lock:
            return sqlite_subscriptions.sources(self._conn, user_id, at)

    def claim_notifications(
        self, limit: int, now: datetime, lease_seconds: int, audiences: Sequence[Audience]
    ) -> list[Notification]:
        until = ts(now + timedelta(seconds=lease_seconds))
        marks = ", ".join("?" * len(audiences))
        with self.transaction():
            rows = _dicts(
                self._conn.execute(
                    "UPDATE outbox SET claimed_until = ? WHERE id IN (SELECT id FROM outbox"
                    f" WHERE delivered_at IS NULL AND audience IN ({marks})"
                    " AND (claimed_until IS NULL OR claimed_until <= ?)"
                    " ORDER BY id LIMIT ?) RETURNING *",
                    (until, *[a.value for a in audiences], ts(now), limit),
                )
            )
        rows.sort(key=lambda r: int(r["id"]))
        return [codec.notification_from(r) for r in rows]

    def mark_delivered(self, ids: Sequence[int], at: datetime) -> None:
        if not ids:
            return
        sql = "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?"
        with self.transaction():
            if len(ids) == 1:
                self._conn.execute(sql, (ts(at), ids[0]))
            else:
                self._conn.executemany(sql, [(ts(at), i) for i in ids])

    def mark_failed(self, notification_id: int, error: str) -> None:
        with self.transaction():
            self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_until = NULL"
                " WHERE id = ?",
                (error[:1000], notification_id),
            )

    def remember_event(self, source: str, event_id: str, at: datetime) -> bool:
        """Record an inbound event id once; False if it was already recorded."""
        with self.transaction() as tx:
            return tx.remember_event(source, event_id, at)

    def report_rows(self, sql_name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            sql = render(sql_name, seconds=seconds_between)
        except KeyError:
            raise InvalidInput(f"unknown report query {sql_name!r}") from None
        return self._read(sql, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def seconds_between(start: str, end: str) -> str:
    """SQLite's seconds from ISO-text column ``start`` to ``end`` (for report SQL)."""
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        tuple(row.values()),
    )


def _update(
    conn: sqlite3.Connection, table: str, row: dict[str, Any], expected: int
) -> sqlite3.Cursor:
    sets = ", ".join(f"{k} = ?" for k in row if k != "id")
    values = [v for k, v in row.items() if k != "id"]
    return conn.execute(
        f"UPDATE {table} SET {sets} WHERE id = ? AND version = ?", (*values, row["id"], expected)
    )


def _get_ticket(conn: sqlite3.Connection, ticket_id: str) -> Ticket | None:
    found = _dicts(conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)))
    if not found:
        return None
    messages = _dicts(
        conn.execute("SELECT * FROM ticket_messages WHERE ticket_id = ? ORDER BY id", (ticket_id,))
    )
    return codec.ticket_from(found[0], [codec.message_from(m) for m in messages])


def _deadline(r: dict[str, Any]) -> Deadline:
    return Deadline(
        kind=DeadlineKind(r["kind"]),
        subject_id=r["subject_id"],
        due_at=datetime.fromisoformat(r["due_at"]),
        remind_at=None if r["remind_at"] is None else datetime.fromisoformat(r["remind_at"]),
        state=DeadlineState(r["state"]),
        id=r["id"],
    )


def _status_user(statuses: Sequence[str], user_id: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if statuses:
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if user_id is not None:
        clauses.append("user_id = ?")
        params.append(user_id)
    return ((" WHERE " + " AND ".join(clauses)) if clauses else ""), params
