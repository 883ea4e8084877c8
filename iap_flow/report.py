"""The summary report: orders by status, revenue, refunds, review turnaround, breaches, rating.

Every figure is an aggregate computed in the database (:meth:`Store.report_rows`), never by
loading rows into Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from iap_flow.codec import ts
from iap_flow.domain.money import Money

REPORT_QUERIES = (
    "orders_by_status",
    "revenue",
    "refunds_by_status",
    "review_turnaround",
    "breaches",
    "ratings",
)
"""Named aggregates every store implements for :meth:`Store.report_rows`."""
OPERATIONS_QUERIES = ("outbox_backlog", "outbox_pending")
"""Named aggregates of on-call's (``operations.read``), not the analysts': who is waiting for
which notification is no analyst's business."""


@attrs.frozen
class Report:
    """Figures for one period (``since`` inclusive, ``until`` exclusive; None = unbounded)."""

    since: datetime | None
    until: datetime | None
    orders_by_status: dict[str, int]
    revenue: list[Money]
    refunded: list[Money]
    refunds_by_status: dict[str, int]
    refund_rate: float
    """Refunded orders / paid orders (orders that were ever paid), 0.0 when none were paid."""
    review_p50_seconds: float | None
    review_p95_seconds: float | None
    breaches: dict[str, int]
    average_rating: float | None
    ratings: dict[int, int]

    @property
    def orders(self) -> int:
        return sum(self.orders_by_status.values())

    def lines(self) -> list[str]:
        """The report as plain text lines."""

        def dur(seconds: float | None) -> str:
            if seconds is None:
                return "-"
            hours, rest = divmod(int(seconds), 3600)
            return f"{hours}h{rest // 60:02d}m"

        out = [f"orders: {self.orders}"]
        out += [f"  {status}: {n}" for status, n in sorted(self.orders_by_status.items())]
        out.append("revenue (paid, net of refunds): " + (", ".join(map(str, self.revenue)) or "0"))
        out.append("refunded: " + (", ".join(map(str, self.refunded)) or "0"))
        out.append(f"refund rate: {self.refund_rate:.1%}")
        out.append(
            "refund requests: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.refunds_by_status.items())) or "none")
        )
        out.append(
            f"review turnaround: p50 {dur(self.review_p50_seconds)}, "
            f"p95 {dur(self.review_p95_seconds)}"
        )
        out.append(
            "deadline breaches: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.breaches.items())) or "none")
        )
        avg = "-" if self.average_rating is None else f"{self.average_rating:.2f}"
        out.append(f"average rating: {avg} from {sum(self.ratings.values())} reviews")
        return out


def build_report(rows: Any, since: datetime | None, until: datetime | None) -> Report:
    """Assemble a :class:`Report` from a ``rows(name, params)`` callable."""
    params = {
        "since": None if since is None else ts(since),
        "until": None if until is None else ts(until),
    }

    def q(name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = rows(name, params)
        return result

    by_status = {r["status"]: int(r["n"]) for r in q("orders_by_status")}
    revenue, refunded = [], []
    paid_orders = refunded_orders = 0
    for r in q("revenue"):
        paid_orders += int(r["paid_orders"])
        refunded_orders += int(r["refunded_orders"])
        revenue.append(Money(int(r["gross"]) - int(r["refunded"]), r["currency"]))
        if int(r["refunded"]):
            refunded.append(Money(int(r["refunded"]), r["currency"]))
    turnaround = q("review_turnaround")
    p50 = turnaround[0]["p50"] if turnaround else None
    p95 = turnaround[0]["p95"] if turnaround else None
    ratings = {int(r["rating"]): int(r["n"]) for r in q("ratings")}
    count = sum(ratings.values())
    average = sum(k * v for k, v in ratings.items()) / count if count else None
    return Report(
        since=since,
        until=until,
        orders_by_status=by_status,
        revenue=revenue,
        refunded=refunded,
        refunds_by_status={r["status"]: int(r["n"]) for r in q("refunds_by_status")},
        refund_rate=refunded_orders / paid_orders if paid_orders else 0.0,
        # to the millisecond: SQLite's julianday() arithmetic leaves float noise (10 h came
        # out as 35999.99998 s and printed as 9h59m)
        review_p50_seconds=None if p50 is None else round(float(p50), 3),
        review_p95_seconds=None if p95 is None else round(float(p95), 3),
        breaches={r["kind"]: int(r["n"]) for r in q("breaches")},
        average_rating=average,
        ratings=ratings,
    )
