"""SQL shared by the relational stores: order pages and their cursor, outbox claims, text
checks and the report aggregates, written once; :class:`Dialect` holds the differences.

``{seconds}`` in a report is replaced by the dialect's expression for the seconds between
two times, ``{day:col}`` by its UTC day.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from iap_flow import codec
from iap_flow.codec import ts
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import Audience, Notification, Order
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


# -- report aggregates --------------------------------------------------------------------

PERIOD = "(:since IS NULL OR {col} >= :since) AND (:until IS NULL OR {col} < :until)"


def period(col: str) -> str:
    return PERIOD.format(col=col)


REPORTS: dict[str, str] = {
    "orders_by_status": (
        "SELECT status, COUNT(*) AS n FROM orders WHERE "
        + period("created_at")
        + " GROUP BY status"
    ),
    "revenue": (
        "SELECT o.currency AS currency,"
        " COUNT(*) AS paid_orders,"
        " SUM(CASE WHEN o.refunded_amount > 0 THEN 1 ELSE 0 END) AS refunded_orders,"
        " SUM(o.amount) AS gross,"
        " SUM(o.refunded_amount) AS refunded"
        " FROM orders o"
        " WHERE o.paid_at IS NOT NULL AND "
        + period("o.created_at")
        + " GROUP BY o.currency ORDER BY o.currency"
    ),
    "refunds_by_status": (
        "SELECT status, COUNT(*) AS n FROM refunds WHERE "
        + period("created_at")
        + " GROUP BY status"
    ),
    "review_turnaround": (
        "WITH d AS (SELECT {seconds} AS s FROM refunds"
        " WHERE decided_at IS NOT NULL AND " + period("created_at") + "),"
        " r AS (SELECT s, ROW_NUMBER() OVER (ORDER BY s) AS rn, COUNT(*) OVER () AS n FROM d)"
        " SELECT MIN(CASE WHEN rn = (50 * n + 99) / 100 THEN s END) AS p50,"
        " MIN(CASE WHEN rn = (95 * n + 99) / 100 THEN s END) AS p95 FROM r"
    ),
    "breaches": (
        "SELECT kind, COUNT(*) AS n FROM deadlines WHERE state = 'fired'"
        " AND kind IN ('refund_review', 'ticket_first_response', 'ticket_resolution')"
        " AND " + period("due_at") + " GROUP BY kind"
    ),
    "ratings": (
        "SELECT rating, COUNT(*) AS n FROM tickets WHERE "
        + period("created_at")
        + " GROUP BY rating"
    ),
}


# -- analysis aggregates (iap_flow.analysis) ------------------------------------------------
# Placeholders, filled in by each store's dialect through :func:`render`:
#   {seconds:a:b}  seconds from column a to column b
#   {day:col}      the UTC day of column col as 'YYYY-MM-DD' text
# Everything else is portable SQL (CASE, COUNT, SUM, window functions, correlated subqueries).

_STAFF_KINDS = "('refund_review', 'ticket_first_response', 'ticket_resolution')"
_FIRST_STAFF = (
    "(SELECT m.author_id FROM ticket_messages m WHERE m.ticket_id = {t} AND m.role <> 'buyer'"
    " ORDER BY m.id LIMIT 1)"
)


def percentiles(source: str, *, grouped: bool = False, extra: str = "") -> str:
    """Nearest-rank p50 and p95 (and n, mean) of column ``s`` of ``source``, per ``g`` if grouped."""
    part = "PARTITION BY g " if grouped else ""
    return (
        f"WITH d AS ({source}), r AS (SELECT d.*, ROW_NUMBER() OVER ({part}ORDER BY s) AS rn,"
        f" COUNT(*) OVER ({part.strip()}) AS n FROM d)"
        f" SELECT {'g AS key, ' if grouped else ''}COUNT(*) AS n, AVG(s) AS mean,"
        " MIN(CASE WHEN rn = (50 * n + 99) / 100 THEN s END) AS p50,"
        f" MIN(CASE WHEN rn = (95 * n + 99) / 100 THEN s END) AS p95{extra} FROM r"
        + (" GROUP BY g ORDER BY g" if grouped else "")
    )


_SALES = (
    "COUNT(*) AS orders,"
    " SUM(CASE WHEN paid_at IS NOT NULL THEN 1 ELSE 0 END) AS paid,"
    " SUM(CASE WHEN status = 'payment_failed' THEN 1 ELSE 0 END) AS failed,"
    " SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) AS refunded,"
    " SUM(CASE WHEN paid_at IS NOT NULL THEN amount ELSE 0 END) AS gross"
)


def _sales(key: str | None, extra: str = "") -> str:
    head = "" if key is None else f"{key} AS key{extra}, "
    group = "currency" if key is None else "1, currency"
    return (
        f"SELECT {head}currency, {_SALES} FROM orders WHERE "
        + period("created_at")
        + f" GROUP BY {group} ORDER BY {group}"
    )


def _sales_cube() -> str:
    """Every sales breakdown from ONE scan of the orders: the scan groups by day, product,
    kind, platform, currency and status (the only large sort), the breakdowns re-group that."""
    sums = (
        "SUM(orders) AS orders, SUM(paid) AS paid, SUM(failed) AS failed,"
        " SUM(refunded) AS refunded, SUM(gross) AS gross"
    )
    cube = (
        "WITH g AS (SELECT {day:created_at} AS day, sku, MAX(title) AS title, kind, platform,"
        f" currency, status, {_SALES} FROM orders WHERE "
        + period("created_at")
        + " GROUP BY 1, sku, kind, platform, currency, status) "
    )
    dims = (
        ("day", "day", "NULL", "day, "),
        ("product", "sku", "MAX(title)", "sku, "),
        ("kind", "kind", "NULL", "kind, "),
        ("platform", "platform", "NULL", "platform, "),
        ("status", "status", "NULL", "status, "),
        ("all", "'all'", "NULL", ""),
    )
    return cube + " UNION ALL ".join(
        f"SELECT '{dim}' AS dim, {key} AS key, {title} AS title, currency, {sums}"
        f" FROM g GROUP BY {group}currency"
        for dim, key, title, group in dims
    )


def _refunds(key: str, source: str) -> str:
    return (
        f"SELECT {key} AS key, r.currency AS currency, COUNT(*) AS requests,"
        " SUM(CASE WHEN r.status = 'refunded' THEN 1 ELSE 0 END) AS refunded,"
        " SUM(CASE WHEN r.status = 'rejected' THEN 1 ELSE 0 END) AS rejected,"
        " SUM(CASE WHEN r.status = 'refunded' THEN r.amount ELSE 0 END) AS refunded_amount"
        f" FROM {source} WHERE " + period("r.created_at") + " GROUP BY 1, r.currency ORDER BY 1"
    )


def _export(table: str, key: str, time: str) -> str:
    return (
        f"SELECT * FROM {table} WHERE {key} > :after AND "
        + period(time)
        + f" ORDER BY {key} LIMIT :limit"
    )


def _texts(table: str, column: str, rating: str) -> str:
    """Every ``stride``-th text of the period (a systematic sample when there are too many)."""
    return (
        f"WITH x AS (SELECT created_at, {column} AS text, {rating} AS rating,"
        f" ROW_NUMBER() OVER (ORDER BY id) AS rn FROM {table} WHERE " + period("created_at") + ")"
        " SELECT created_at, text, rating FROM x WHERE (rn - 1) % :stride = 0 ORDER BY rn"
    )


ANALYSIS: dict[str, str] = {
    "sales_cube": _sales_cube(),
    "sales_totals": _sales(None),
    "sales_by_day": _sales("{day:created_at}"),
    "sales_by_product": _sales("sku", ", MAX(title) AS title"),
    "sales_by_kind": _sales("kind"),
    "sales_by_platform": _sales("platform"),
    "refunds_by_product": _refunds("o.sku", "refunds r JOIN orders o ON o.id = r.order_id"),
    "refunds_by_platform": _refunds("r.platform", "refunds r"),
    "refund_decisions": (
        "SELECT CASE WHEN status = 'rejected' THEN 'rejected'"
        " WHEN status = 'withdrawn' THEN 'withdrawn'"
        " WHEN decided_at IS NOT NULL THEN 'approved'"
        " WHEN status = 'refunded' THEN 'refunded by the platform'"
        " ELSE 'awaiting a decision' END AS decision, COUNT(*) AS n"
        " FROM refunds WHERE " + period("created_at") + " GROUP BY 1 ORDER BY 2 DESC, 1"
    ),
    "refund_reasons": (
        "SELECT reason, COUNT(*) AS n FROM refunds WHERE "
        + period("created_at")
        + " GROUP BY reason ORDER BY n DESC, reason LIMIT 10"
    ),
    "review_by_reviewer": percentiles(
        "SELECT decided_by AS g, {seconds:created_at:decided_at} AS s,"
        " CASE WHEN status = 'rejected' THEN 1 ELSE 0 END AS rejected, escalated"
        " FROM refunds WHERE decided_by IS NOT NULL AND decided_at IS NOT NULL AND "
        + period("created_at"),
        grouped=True,
        extra=", SUM(rejected) AS rejected, SUM(escalated) AS escalated",
    ),
    "review_spread": percentiles(
        "SELECT {seconds:created_at:decided_at} AS s FROM refunds"
        " WHERE decided_at IS NOT NULL AND " + period("created_at")
    ),
    "refund_execution": percentiles(
        "SELECT {seconds:decided_at:updated_at} AS s FROM refunds"
        " WHERE status = 'refunded' AND decided_at IS NOT NULL AND " + period("created_at")
    ),
    "breaches_by_kind": (
        "SELECT kind, COUNT(*) AS deadlines,"
        " SUM(CASE WHEN state = 'fired' THEN 1 ELSE 0 END) AS breached,"
        " SUM(CASE WHEN state IN ('pending', 'reminded') THEN 1 ELSE 0 END) AS still_open"
        f" FROM deadlines WHERE kind IN {_STAFF_KINDS} AND " + period("due_at") + " GROUP BY kind"
    ),
    # Who held the case when the deadline passed: the last staff member who acted on it by
    # then (not who decided it later, often the lead it was escalated to); else the queue.
    "breaches_by_agent": (
        "WITH f AS (SELECT kind, subject_id, due_at FROM deadlines WHERE state = 'fired'"
        f" AND kind IN {_STAFF_KINDS} AND " + period("due_at") + "),"
        " a AS (SELECT f.kind, (SELECT e.actor_id FROM audit_events e"
        " WHERE e.aggregate_id = f.subject_id AND e.role IN ('support_agent', 'support_lead')"
        " AND e.at <= f.due_at ORDER BY e.at DESC, e.id DESC LIMIT 1) AS agent FROM f)"
        " SELECT COALESCE(agent, '(unassigned queue)') AS agent, kind, COUNT(*) AS n FROM a"
        " GROUP BY 1, kind ORDER BY 3 DESC, 1, kind"
    ),
    "escalations_by_kind": (
        "SELECT CASE WHEN aggregate = 'refund' AND from_state = 'failed' THEN 'refund_payout'"
        " WHEN aggregate = 'refund' THEN 'refund_review'"
        " WHEN CAST(data AS TEXT) LIKE '%ticket_first_response%' THEN 'ticket_first_response'"
        " ELSE 'ticket_resolution' END AS kind, COUNT(*) AS n"
        " FROM audit_events WHERE event = 'escalate' AND " + period("at") + " GROUP BY 1"
    ),
    "first_response": percentiles(
        "SELECT {seconds:created_at:first_response_at} AS s FROM tickets"
        " WHERE first_response_at IS NOT NULL AND " + period("created_at")
    ),
    "resolution": percentiles(
        "SELECT {seconds:created_at:resolved_at} AS s FROM tickets"
        " WHERE status = 'resolved' AND resolved_at IS NOT NULL AND " + period("created_at")
    ),
    "ticket_totals": (
        "SELECT COUNT(*) AS tickets,"
        " SUM(CASE WHEN reopen_count > 0 THEN 1 ELSE 0 END) AS reopened,"
        " SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END) AS resolved,"
        " SUM(escalated) AS escalated FROM tickets WHERE " + period("created_at")
    ),
    "service_by_agent": percentiles(
        "SELECT "
        + _FIRST_STAFF.format(t="t.id")
        + " AS g, {seconds:t.created_at:t.first_response_at} AS s,"
        " CASE WHEN t.reopen_count > 0 THEN 1 ELSE 0 END AS reopened, t.escalated AS escalated"
        " FROM tickets t WHERE t.first_response_at IS NOT NULL AND " + period("t.created_at"),
        grouped=True,
        extra=", SUM(reopened) AS reopened, SUM(escalated) AS escalated",
    ),
    "ratings_by_day": (
        "SELECT {day:created_at} AS day, COUNT(*) AS n, SUM(rating) AS total FROM tickets WHERE "
        + period("created_at")
        + " GROUP BY 1 ORDER BY 1"
    ),
    "text_counts": (
        "SELECT (SELECT COUNT(*) FROM tickets WHERE " + period("created_at") + ") AS feedback,"
        " (SELECT COUNT(*) FROM refunds WHERE " + period("created_at") + ") AS reasons"
    ),
    "feedback_texts": _texts("tickets", "body", "rating"),
    "reason_texts": _texts("refunds", "reason", "CAST(NULL AS INTEGER)"),
    "export_orders": _export("orders", "id", "created_at"),
    "export_refunds": _export("refunds", "id", "created_at"),
    "export_tickets": _export("tickets", "id", "created_at"),
    "export_audit_events": _export("audit_events", "id", "at"),
}
"""The named aggregates behind ``iap-flow report`` and ``iap-flow export``."""
REPORTS.update(ANALYSIS)

OPERATIONS: dict[str, str] = {
    "outbox_backlog": (
        "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest,"
        " SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS failing"
        " FROM outbox WHERE delivered_at IS NULL"
    ),
    "outbox_pending": (
        "SELECT id, topic, recipient, audience, created_at, attempts, last_error FROM outbox"
        " WHERE delivered_at IS NULL AND id > :after ORDER BY id LIMIT :limit"
    ),
}
"""What on-call reads of the outbox (``iap-flow notify list``, the worker's metrics)."""
REPORTS.update(OPERATIONS)

_SECONDS = re.compile(r"\{seconds(?::([\w.]+):([\w.]+))?\}")
_DAY = re.compile(r"\{day:([\w.]+)\}")


def render(
    sql_name: str,
    *,
    seconds: Callable[[str, str], str],
    day: Callable[[str], str] = lambda col: f"substr({col}, 1, 10)",
) -> str:
    """The SQL of report query ``sql_name`` in a store's dialect (KeyError if unknown).

    ``seconds(a, b)`` is the dialect's seconds from column ``a`` to ``b``; a bare ``{seconds}``
    means from ``created_at`` to ``decided_at``. ``day(col)`` is the UTC day as 'YYYY-MM-DD'.
    """
    sql = REPORTS[sql_name]
    sql = _SECONDS.sub(lambda m: seconds(m[1] or "created_at", m[2] or "decided_at"), sql)
    return _DAY.sub(lambda m: day(m[1]), sql)
