"""Assemble an :class:`~iap_flow.analysis.model.Analysis` from a store's named aggregates.

Every count, sum and percentile is computed by the database (``Store.report_rows``); this
module turns rows into records, joins two aggregates on their key and divides. Only the topic
model reads texts, because grouping texts by meaning is not something SQL does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import attrs

from iap_flow.analysis.model import (
    Analysis,
    Breach,
    Feedback,
    PersonStats,
    PlanCurrency,
    Refunds,
    RefundSegment,
    Sales,
    Segment,
    Service,
    Spread,
    SubscriptionFigures,
    Topics,
)
from iap_flow.codec import ts
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.money import Money

Rows = Callable[[str, dict[str, Any]], list[dict[str, Any]]]
"""``Store.report_rows``: a named aggregate and its parameters -> rows as dicts."""
Query = Callable[..., list[dict[str, Any]]]
"""A named aggregate for the report's period: ``q(name, **extra_params)``."""

QUERIES = (
    "sales_cube",
    "refunds_by_product",
    "refunds_by_platform",
    "refund_decisions",
    "refund_reasons",
    "review_spread",
    "review_by_reviewer",
    "refund_execution",
    "breaches_by_kind",
    "breaches_by_agent",
    "escalations_by_kind",
    "first_response",
    "resolution",
    "ticket_totals",
    "service_by_agent",
    "ratings",
    "ratings_by_day",
    "text_counts",
    "feedback_texts",
    "reason_texts",
    "subscriptions_now",
    "subscription_renewals",
    "subscription_moves",
)
"""Named aggregates every store implements for the analysis report (with :data:`EXPORTS`).

``sales_totals`` and ``sales_by_{day,product,kind,platform}`` give the same figures as
``sales_cube`` one breakdown at a time (Datasette's canned queries use them)."""

EXPORTS = ("export_orders", "export_refunds", "export_tickets", "export_audit_events")

MAX_TEXTS = 20_000
"""Texts per source the topic model reads; above it, a systematic sample (every n-th)."""


def period_params(since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """The ``:since`` / ``:until`` parameters every aggregate takes (ISO text, None = open)."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until", field="since")
    return {
        "since": None if since is None else ts(since),
        "until": None if until is None else ts(until),
    }


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _secs(value: Any) -> float | None:
    # Dialects compute seconds in floating point (SQLite through julianday): keep milliseconds.
    return None if value is None else round(float(value), 3)


def _spread(row: dict[str, Any] | None) -> Spread:
    if not row or not row.get("n"):
        return Spread()
    return Spread(_int(row["n"]), _secs(row["mean"]), _secs(row["p50"]), _secs(row["p95"]))


def _money(pairs: Iterable[tuple[str, int]]) -> tuple[Money, ...]:
    totals: dict[str, int] = {}
    for currency, amount in pairs:
        totals[currency] = totals.get(currency, 0) + amount
    return tuple(
        Money.trusted(a, c) for c, a in sorted(totals.items(), key=lambda x: (-x[1], x[0])) if a
    )


def segments(rows: list[dict[str, Any]], key: str = "key") -> tuple[Segment, ...]:
    """One :class:`Segment` per key; a key's rows differ only by currency."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get(key, "all")), []).append(row)
    return tuple(
        Segment(
            key=k,
            label=str(group[0].get("title") or k),
            orders=sum(_int(r["orders"]) for r in group),
            paid=sum(_int(r["paid"]) for r in group),
            failed=sum(_int(r["failed"]) for r in group),
            refunded=sum(_int(r["refunded"]) for r in group),
            revenue=_money((r["currency"], _int(r["gross"])) for r in group),
        )
        for k, group in grouped.items()
    )


def _refund_segments(
    rows: list[dict[str, Any]], sales: tuple[Segment, ...]
) -> tuple[RefundSegment, ...]:
    base = {s.key: s for s in sales}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["key"]), []).append(row)
    out = []
    for key in sorted(set(grouped) | {s.key for s in sales if s.refunded}):
        group = grouped.get(key, [])
        seg = base.get(key)
        out.append(
            RefundSegment(
                key=key,
                requests=sum(_int(r["requests"]) for r in group),
                refunded=sum(_int(r["refunded"]) for r in group),
                rejected=sum(_int(r["rejected"]) for r in group),
                refunded_amount=_money((r["currency"], _int(r["refunded_amount"])) for r in group),
                paid_orders=seg.paid if seg else 0,
                refunded_orders=seg.refunded if seg else 0,
            )
        )
    return tuple(sorted(out, key=lambda s: (-(s.refund_rate or 0.0), -s.requests, s.key)))


def _people(rows: list[dict[str, Any]]) -> tuple[PersonStats, ...]:
    return tuple(
        PersonStats(
            who=str(r["key"]) if r["key"] is not None else "(unknown)",
            spread=_spread(r),
            rejected=_int(r.get("rejected")),
            reopened=_int(r.get("reopened")),
            escalated=_int(r.get("escalated")),
        )
        for r in rows
    )


def analyse(
    rows: Rows,
    since: datetime | None,
    until: datetime | None,
    *,
    now: datetime,
    max_texts: int = MAX_TEXTS,
    max_topics: int = 8,
) -> Analysis:
    """The whole report for orders, refunds, tickets and deadlines of ``[since, until)``."""
    params = period_params(since, until)

    def q(name: str, **extra: Any) -> list[dict[str, Any]]:
        return rows(name, {**params, **extra})

    # The topic model (texts, tokenising, NMF: CPU in Python) runs beside the aggregates
    # (time in the database, which releases the GIL): on two cores the report takes about
    # as long as the slower of the two. Stores serialise or pool their connections.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="iap-flow-topics") as pool:
        fetched = threading.Event()
        topics = pool.submit(_all_topics, q, max_texts, max_topics, fetched)
        fetched.wait()  # the texts first: then the model and the aggregates run side by side
        return _figures(q, since, until, now, topics)


def _figures(
    q: Query,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    topics: Future[tuple[Topics, Topics]],
) -> Analysis:
    """Every figure but the topics, which ``topics`` delivers when they are ready."""

    def first(name: str) -> dict[str, Any] | None:
        found = q(name)
        return found[0] if found else None

    cube: dict[str, list[dict[str, Any]]] = {}
    for row in q("sales_cube"):
        cube.setdefault(str(row["dim"]), []).append(row)
    by_product = tuple(sorted(segments(cube.get("product", [])), key=lambda s: (-s.orders, s.key)))
    by_platform = segments(cube.get("platform", []))
    (total,) = segments(cube.get("all", [])) or (Segment("all", "all", 0, 0, 0, 0, ()),)
    sales = Sales(
        total=total,
        by_day=segments(cube.get("day", [])),
        by_product=by_product,
        by_kind=segments(cube.get("kind", [])),
        by_platform=by_platform,
        by_status=tuple(sorted(segments(cube.get("status", [])), key=lambda s: -s.orders)),
    )
    refunds = Refunds(
        by_product=_refund_segments(q("refunds_by_product"), by_product),
        by_platform=_refund_segments(q("refunds_by_platform"), by_platform),
        decisions={str(r["decision"]): _int(r["n"]) for r in q("refund_decisions")},
        reasons=tuple((str(r["reason"]), _int(r["n"])) for r in q("refund_reasons")),
        review=_spread(first("review_spread")),
        execution=_spread(first("refund_execution")),
        reviewers=_people(q("review_by_reviewer")),
    )
    totals = first("ticket_totals") or {}
    service = Service(
        breaches=tuple(
            Breach(str(r["kind"]), _int(r["deadlines"]), _int(r["breached"]), _int(r["still_open"]))
            for r in sorted(q("breaches_by_kind"), key=lambda r: str(r["kind"]))
        ),
        escalations={str(r["kind"]): _int(r["n"]) for r in q("escalations_by_kind")},
        breaches_by_agent=tuple(
            (str(r["agent"]), str(r["kind"]), _int(r["n"])) for r in q("breaches_by_agent")
        ),
        first_response=_spread(first("first_response")),
        resolution=_spread(first("resolution")),
        tickets=_int(totals.get("tickets")),
        reopened=_int(totals.get("reopened")),
        agents=_people(q("service_by_agent")),
    )
    feedback = Feedback(
        ratings={int(r["rating"]): _int(r["n"]) for r in q("ratings")},
        by_day=tuple(
            (str(r["day"]), _int(r["n"]), _int(r["total"]) / _int(r["n"]))
            for r in q("ratings_by_day")
        ),
        topics=topics.result()[0],
        reason_topics=topics.result()[1],
    )
    return Analysis(since, until, now, sales, refunds, service, feedback, _subscriptions(q))


def _subscriptions(q: Query) -> SubscriptionFigures:
    moves = (q("subscription_moves") or [{}])[0]
    renewals = q("subscription_renewals")
    return SubscriptionFigures(
        by_currency=tuple(
            PlanCurrency(
                str(r["currency"]),
                _int(r["active"]),
                _int(r["in_grace"]),
                _int(r["cancelled"]),
                # the year's recurring revenue as a month, rounded half up
                Money.trusted((_int(r["yearly"]) + 6) // 12, str(r["currency"])),
            )
            for r in q("subscriptions_now")
        ),
        renewals=sum(_int(r["n"]) for r in renewals),
        renewal_revenue=_money((str(r["currency"]), _int(r["amount"])) for r in renewals),
        **{k: _int(moves.get(k)) for k in _MOVES},
    )


_MOVES = (
    "started",
    "voluntary_churn",
    "involuntary_churn",
    "revoked",
    "entered_grace",
    "grace_recoveries",
    "hold_recoveries",
)


def _all_topics(
    q: Query, max_texts: int, max_topics: int, fetched: threading.Event
) -> tuple[Topics, Topics]:
    """Read both kinds of text, say so through ``fetched``, then model them (CPU only)."""
    try:
        counts = q("text_counts")
        sources = [
            _texts(q, source, name, _int(counts[0][column]) if counts else 0, max_texts)
            for source, name, column in (
                ("feedback", "feedback_texts", "feedback"),
                ("refund reasons", "reason_texts", "reasons"),
            )
        ]
    finally:
        fetched.set()
    feedback, reasons = (_model(batch, max_topics) for batch in sources)
    return feedback, reasons


@attrs.frozen
class _Batch:
    source: str
    total: int
    stride: int
    texts: list[Any]


def _texts(q: Query, source: str, name: str, total: int, max_texts: int) -> _Batch:
    from iap_flow.analysis.topics import Text  # scikit-learn and jieba load only now

    stride = max(1, -(-total // max_texts)) if max_texts > 0 else 1
    rows = q(name, stride=stride) if total else []
    texts = [
        Text(
            str(r["created_at"]), str(r["text"]), None if r["rating"] is None else int(r["rating"])
        )
        for r in rows
    ]
    return _Batch(source, total, stride, texts)


def _model(batch: _Batch, max_topics: int) -> Topics:
    from iap_flow.analysis.topics import find_topics

    if batch.total == 0:
        return Topics(batch.source, 0, 0, batch.stride, (), "no texts in this period")
    return find_topics(
        batch.texts, source=batch.source, total=batch.total, stride=batch.stride, k=max_topics
    )
