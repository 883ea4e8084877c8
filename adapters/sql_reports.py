"""The report aggregates both relational stores run: ``iap-flow report``, the analysis
(``iap-flow export``, Datasette's canned queries) and on-call's outbox reads, in portable SQL.

``{seconds}`` in a report is replaced by the dialect's expression for the seconds between
two times, ``{day:col}`` by its UTC day (see :func:`render`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from iap_flow.adapters.subscription_reports import SUBSCRIPTION_REPORTS

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
REPORTS.update(SUBSCRIPTION_REPORTS)

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
