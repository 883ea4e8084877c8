"""SQL shared by the relational stores: order pages and their cursor, outbox claims and
text checks, written once; :class:`Dialect` holds the differences. The report aggregates
are in :mod:`.sql_reports` (:data:`REPORTS`, :func:`render` are re-exported here).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from iap_flow import codec
from iap_flow.adapters.sql_reports import REPORTS as REPORTS
from iap_flow.adapters.sql_reports import render as render
from iap_flow.codec import ts
from iap_flow.domain.errors import ConflictError, InvalidInput
from iap_flow.domain.models import Order
from iap_flow.ports import OrderQuery

MONEY_GUARDS = ("orders_refunded_within_paid", "refunds_within_paid")
"""The database's own guards that an order's refunds stay within what was paid (a CHECK on
the order's refunded total, a trigger on its completed refunds), by name in both stores."""


@attrs.frozen
class Dialect:
    """What differs between the stores' SQL."""

    mark: str
    """The parameter placeholder: ``?`` or ``%s``."""
    skip_locked: str
    """Appended to a subquery that takes rows for this worker (PostgreSQL's SKIP LOCKED)."""
    row_compare: bool
    """``(a, b) < (x, y)`` uses the index (PostgreSQL); else the expanded OR."""
    seconds: Callable[[str, str], str]
    day: Callable[[str], str]

    def sql(self, text: str) -> str:
        """``text``, written with ``?`` placeholders, in this dialect's."""
        return text if self.mark == "?" else text.replace("?", self.mark)

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` equal to one of ``values``, and its parameters."""
        if self.mark == "%s":
            return f"{column} = ANY(%s)", [list(values)]
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)


# -- text every store refuses alike -----------------------------------------------------------


def bad_text(value: str) -> bool:
    """NUL or a lone surrogate: text no store can keep as given (PostgreSQL refuses NUL,
    UTF-8 has no lone surrogates), so every store refuses it."""
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_text(values: Iterable[object], what: str) -> None:
    """Raise :class:`InvalidInput` if any text in ``values`` has NUL or a lone surrogate.
    (On the write path: the common case, ASCII without NUL, costs two C calls a value.)"""
    for value in values:
        if value.__class__ is str and (
            "\x00" in value or (not value.isascii() and bad_text(value))
        ):
            raise InvalidInput(
                f"{what} contains a NUL character or a lone surrogate, which cannot be stored",
                field=what,
            )


def paid_twice(platform: str, transaction_id: str, other: str | None) -> ConflictError:
    """The refusal when the unique index on ``(platform, platform_transaction_id)`` stops a
    second order being paid by one platform transaction (``other``: the order it paid)."""
    paid = f"order {other}" if other else "another order"
    return ConflictError(
        f"{platform} transaction {transaction_id} already paid {paid}; "
        "one platform transaction pays one order"
    )


def check_json(text: str | None, what: str) -> None:
    """The same for JSON text (``json.dumps`` escapes both as ``\\u....``)."""
    if text is None or "\\u" not in text:
        return
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON text: {exc}", field=what) from None
    _walk(value, what)


def _walk(value: object, what: str) -> None:
    if isinstance(value, str):
        check_text((value,), what)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text((k,), what)
            _walk(v, what)
    elif isinstance(value, list):
        for v in value:
            _walk(v, what)


# -- order pages and their opaque cursor ------------------------------------------------------

_CURSOR_PREFIX = "c1."


def encode_cursor(order: Order) -> str:
    """An opaque cursor for the page after ``order`` (the last of a page)."""
    raw = json.dumps([ts(order.created_at), order.id], separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: object) -> tuple[str, str]:
    """``(created_at, id)`` from a cursor this store gave out; :class:`InvalidInput` else."""
    refused = InvalidInput("cursor is not one this store gave out", field="cursor")
    if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > 400:
        raise refused
    body = cursor[len(_CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        created, last_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(last_id, str) or not last_id:
            raise ValueError(cursor)
        when = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise refused from None
    if when.tzinfo is None or bad_text(last_id) or ts(when) != created:
        raise refused
    return created, last_id


def order_page(query: OrderQuery, d: Dialect) -> tuple[str, list[Any]]:
    """The SQL and parameters of one page of :meth:`Store.query_orders` (one row more than
    the limit, to tell whether another page follows), newest first."""
    m = d.mark
    clauses: list[str] = []
    params: list[Any] = []
    if query.user_id is not None:
        clauses.append(f"user_id = {m}")
        params.append(query.user_id)
    if query.subscription_id is not None:
        clauses.append(f"(id = {m} OR subscription_id = {m})")
        params.extend([query.subscription_id, query.subscription_id])
    if query.statuses:
        clause, values = d.any_of("status", query.statuses)
        clauses.append(clause)
        params.extend(values)
    if query.since is not None:
        clauses.append(f"created_at >= {m}")
        params.append(ts(query.since))
    if query.until is not None:
        clauses.append(f"created_at < {m}")
        params.append(ts(query.until))
    if query.cursor is not None:
        created, last_id = decode_cursor(query.cursor)
        if d.row_compare:
            clauses.append(f"(created_at, id) < ({m}, {m})")
            params.extend([created, last_id])
        else:
            clauses.append(f"(created_at < {m} OR (created_at = {m} AND id < {m}))")
            params.extend([created, created, last_id])
    check_text(params, "query")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    params.append(query.limit + 1)
    return f"{ORDER_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT {m}", params


def page_of(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[Order], str | None]:
    """The orders of a page from :func:`order_page`'s rows, and the next page's cursor."""
    orders = [codec.order_from(r) for r in rows[:limit]]
    more = len(rows) > limit and bool(orders)
    return orders, (encode_cursor(orders[-1]) if more else None)


ORDER_SELECT = "SELECT " + ", ".join(codec.ORDER_COLUMNS) + " FROM orders"


def status_user(d: Dialect, statuses: Sequence[str], user_id: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") of a queue read: any of ``statuses``, of ``user_id``."""
    clauses: list[str] = []
    params: list[Any] = []
    if statuses:
        clause, values = d.any_of("status", statuses)
        clauses.append(clause)
        params.extend(values)
    if user_id is not None:
        clauses.append(f"user_id = {d.mark}")
        params.append(user_id)
    check_text([user_id, *statuses], "query")
    return ((" WHERE " + " AND ".join(clauses)) if clauses else ""), params


def refund_queue(
    d: Dialect, statuses: Sequence[str], user_id: str | None, limit: int
) -> tuple[str, list[Any]]:
    """Refunds by status and buyer, soonest review deadline first."""
    where, params = status_user(d, statuses, user_id)
    return (
        f"SELECT * FROM refunds{where} ORDER BY review_due_at IS NULL, review_due_at, id"
        f" LIMIT {d.mark}",
        [*params, limit],
    )


def ticket_queue(
    d: Dialect, statuses: Sequence[str], user_id: str | None, limit: int
) -> tuple[str, list[Any]]:
    """Tickets (their rows, without messages) by status and buyer, oldest first."""
    where, params = status_user(d, statuses, user_id)
    return f"SELECT * FROM tickets{where} ORDER BY created_at, id LIMIT {d.mark}", [*params, limit]


# -- the unit of work's statements that differ only in their placeholder ------------------------

_STATEMENTS = {
    "order_select": ORDER_SELECT,
    "order_insert": (
        f"INSERT INTO orders ({', '.join(codec.ORDER_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(codec.ORDER_COLUMNS))})"
    ),
    "history": "SELECT * FROM audit_events WHERE aggregate_id = ? ORDER BY id",
    "refunds_of_order": "SELECT * FROM refunds WHERE order_id = ? ORDER BY id",
    "audit_insert": (
        f"INSERT INTO audit_events ({', '.join(codec.AUDIT_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(codec.AUDIT_COLUMNS))})"
    ),
    "deadline_insert": (
        "INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state) VALUES (?, ?, ?, ?, ?)"
    ),
    "deadline_state": "UPDATE deadlines SET state = ? WHERE id = ?",
    "idempotency_get": (
        "SELECT command, fingerprint, result, created_at FROM idempotency WHERE key = ?"
    ),
    # '' is a claim without a result yet (the column predates claims and is NOT NULL)
    "idempotency_claim": (
        "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
        " VALUES (?, ?, ?, '', ?) ON CONFLICT (key) DO UPDATE"
        " SET created_at = excluded.created_at WHERE idempotency.result = ''"
    ),
    "idempotency_claim_new": (
        "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
        " VALUES (?, ?, ?, '', ?) ON CONFLICT (key) DO NOTHING RETURNING 1"
    ),
    "idempotency_finish": (
        "UPDATE idempotency SET result = ? WHERE key = ? AND fingerprint = ? AND result = ''"
    ),
    "idempotency_put": (
        "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET result = excluded.result WHERE idempotency.result = ''"
    ),
    "idempotency_release": "DELETE FROM idempotency WHERE key = ? AND result = ''",
    "event_insert": (
        "INSERT INTO processed_events (source, event_id, created_at, result) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING 1"
    ),
    "event_result": "SELECT result FROM processed_events WHERE source = ? AND event_id = ?",
}


@attrs.frozen
class Statements:
    """SQL both units of work run alike, in one dialect: ``Statements.of(DIALECT)``."""

    order_select: str
    order_insert: str
    history: str
    refunds_of_order: str
    audit_insert: str
    deadline_insert: str
    deadline_state: str
    idempotency_get: str
    idempotency_claim: str
    idempotency_claim_new: str
    idempotency_finish: str
    idempotency_put: str
    idempotency_release: str
    event_insert: str
    event_result: str

    @classmethod
    def of(cls, d: Dialect) -> Statements:
        return cls(**{name: d.sql(text) for name, text in _STATEMENTS.items()})
