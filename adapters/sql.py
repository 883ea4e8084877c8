"""SQL shared by the relational stores: report aggregates written once for both dialects.

``{seconds}`` is replaced by the dialect's expression for the seconds between two ISO texts.
"""

from __future__ import annotations

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
        " SUM(CASE WHEN o.status = 'refunded' THEN 1 ELSE 0 END) AS refunded_orders,"
        " SUM(o.amount) AS gross,"
        " COALESCE(SUM(r.amount), 0) AS refunded"
        " FROM orders o LEFT JOIN refunds r ON r.order_id = o.id AND r.status = 'refunded'"
        " WHERE o.paid_at IS NOT NULL AND " + period("o.created_at") + " GROUP BY o.currency"
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
