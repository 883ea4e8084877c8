"""The report: figures a data analyst would check by hand on a small known history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import Money


@pytest.fixture
def history(world: Any) -> Any:
    """Known history: 5 paid orders (one partly and one fully refunded, one refund rejected),
    one declined, one pending, one expired; three tickets rated 1, 4 and 5."""
    w = world
    w.order(upto="completed")
    w.order("no_ads", upto="delivered")
    full = w.refund()  # 199 USD
    w.advance(hours=2)
    w.flow.refunds.approve(w.agent, full.id)  # decided after 2 h
    part = w.refund("gems_big", amount=Money(4_000, "USD"))
    w.advance(hours=6)
    w.flow.refunds.approve(w.agent, part.id)  # decided after 6 h
    rejected = w.refund("coins_jpy")
    w.advance(hours=10)
    w.flow.refunds.reject(w.lead, rejected.id, reason="coins were spent")  # after 10 h
    w.order(token="tok_decline")
    expired = w.order(upto="pending_payment")
    w.advance(hours=1)
    w.flow.sweep()
    w.order(upto="pending_payment")
    assert w.flow.orders.get(w.system, expired.id).status == "expired"
    for rating in (1, 4, 5):
        w.flow.feedback.submit(w.buyer, rating=rating, body="thoughts")
    return w


def test_orders_revenue_refunds_and_ratings(history: Any) -> None:
    report = history.flow.report(history.analyst)
    assert report.orders_by_status == {
        "completed": 2,  # the first order and the one whose refund was rejected
        "delivered": 1,
        "partially_refunded": 1,  # 4,000 of 9,999 went back
        "refunded": 1,
        "payment_failed": 1,
        "expired": 1,
        "pending_payment": 1,
    }
    assert report.orders == 8
    usd_gross = 199 + 299 + 199 + 9_999
    assert sorted(report.revenue, key=str) == sorted(
        [Money(usd_gross - 199 - 4_000, "USD"), Money(12_000, "JPY")], key=str
    )
    assert report.refunded == [Money(199 + 4_000, "USD")]
    assert report.refund_rate == pytest.approx(2 / 5)  # orders with money back, partly or all
    assert report.refunds_by_status == {"refunded": 2, "rejected": 1}
    assert report.review_p50_seconds == 6 * 3600
    assert report.review_p95_seconds == 10 * 3600
    assert report.ratings == {1: 1, 4: 1, 5: 1}
    assert report.average_rating == pytest.approx(10 / 3)
    assert report.breaches == {}


def test_the_period_is_since_inclusive_until_exclusive(history: Any) -> None:
    start = history.start
    first_hour = history.flow.report(history.dev, since=start, until=start + timedelta(hours=1))
    assert first_hour.orders == 3  # placed before the clock first moved
    later = history.flow.report(history.dev, since=start + timedelta(hours=1))
    assert later.orders == 5
    assert first_hour.orders + later.orders == history.flow.report(history.dev).orders


def test_an_empty_flow_reports_zeros_not_errors(world: Any) -> None:
    report = world.flow.report(world.pm)
    assert (report.orders, report.revenue, report.refund_rate) == (0, [], 0.0)
    assert (report.review_p50_seconds, report.average_rating) == (None, None)
    lines = report.lines()
    assert lines[0] == "orders: 0"
    assert "refund rate: 0.0%" in lines


def test_the_text_lines_show_the_figures(history: Any) -> None:
    text = "\n".join(history.flow.report(history.lead).lines())
    assert "orders: 8" in text
    assert "refund rate: 40.0%" in text
    assert "review turnaround: p50 6h00m, p95 10h00m" in text
    assert "120 JPY" not in text and "12000 JPY" in text
