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
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import Audience, Notification, Order
from iap_flow.ports import OrderQuery


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


# -- the outbox: claims with a lease, renewed while a batch is sent ---------------------------

NOTE_COLUMNS = "id, topic, recipient, payload, created_at, attempts, audience"


def claim_sql(d: Dialect, audiences: Sequence[Audience]) -> tuple[str, list[Any]]:
    """Take up to ``limit`` free notifications for a claimer; parameters follow as
    ``[until, claimer, *audiences, now, limit]``: the caller fills in the values."""
    m = d.mark
    clause, values = d.any_of("audience", [a.value for a in audiences])
    return (
        f"UPDATE outbox SET claimed_until = {m}, claimed_by = {m} WHERE id IN (SELECT id FROM"
        f" outbox WHERE delivered_at IS NULL AND {clause}"
        f" AND (claimed_until IS NULL OR claimed_until <= {m})"
        f" ORDER BY id LIMIT {m}{d.skip_locked}) RETURNING {NOTE_COLUMNS}",
        values,
    )


def renew_sql(d: Dialect, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Extend the lease of those of ``ids`` still undelivered and claimed by the claimer;
    parameters ``[until, *ids, claimer]``; returns their ids."""
    m = d.mark
    clause, values = d.any_of("id", list(ids))
    return (
        f"UPDATE outbox SET claimed_until = {m} WHERE {clause} AND claimed_by = {m}"
        " AND delivered_at IS NULL RETURNING id",
        values,
    )


def delivered_sql(d: Dialect, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """Mark ``ids`` delivered (once: a row already marked keeps its first time); parameters
    ``[at, *ids]``."""
    clause, values = d.any_of("id", list(ids))
    return (
        f"UPDATE outbox SET delivered_at = {d.mark}, attempts = attempts + 1,"
        f" claimed_until = NULL WHERE {clause} AND delivered_at IS NULL",
        values,
    )


def notes_of(rows: Iterable[Any]) -> list[Notification]:
    found = [codec.notification_from(r) for r in rows]
    found.sort(key=lambda n: n.id or 0)
    return found
