"""Store guarantees below the services: outbox leases, version checks, inbound event ids,
report figures and the schema version, the same on every store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from iap_flow import (
    SYSTEM,
    Actor,
    Audience,
    ConcurrentModification,
    Flow,
    ManualClock,
    Money,
    Notification,
    OrderStatus,
    StoreError,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.domain.models import AuditEvent
from iap_flow.report import Report

START = datetime(2026, 1, 1, tzinfo=UTC)
BUYER = Actor.buyer("u1")
AGENT = Actor.agent("a1")
DEV = Actor("dev", "developer")
PM = Actor("pm", "product_manager")
EVERYONE = tuple(Audience)


class FlakyNotifier:
    """Refuses every notification while ``down`` is set, then takes them."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.down:
            raise ConnectionError("chat is down")
        self.sent.append(notification)


def test_outbox_claims_lease_and_redelivers(store_url: str, clock: ManualClock) -> None:
    with open_flow(store_url, clock=clock, deliver_inline=False) as flow:
        store = flow.store
        tickets = [flow.feedback.submit(BUYER, rating=3, body=f"note {i}") for i in range(3)]
        now = clock.now()
        first = store.claim_notifications(2, now, 60, EVERYONE)
        assert [n.payload["ticket_id"] for n in first] == [tickets[0].id, tickets[1].id]
        assert [n.topic for n in first] == ["ticket.opened", "ticket.opened"]
        rest = store.claim_notifications(10, now, 60, EVERYONE)
        assert [n.payload["ticket_id"] for n in rest] == [tickets[2].id]
        assert store.claim_notifications(10, now, 60, EVERYONE) == []  # all leased

        assert first[0].id is not None and first[1].id is not None
        store.mark_delivered([first[0].id], now)
        store.mark_failed(first[1].id, "TimeoutError: slow")
        again = store.claim_notifications(10, now, 60, EVERYONE)
        assert [(n.id, n.attempts) for n in again] == [(first[1].id, 1)]
        # the lease on the third ran out: another worker may take it, the delivered one never
        later = store.claim_notifications(10, now + timedelta(seconds=61), 60, EVERYONE)
        assert {n.id for n in later} == {first[1].id, rest[0].id}


def test_each_process_delivers_its_own_audience(store_url: str, clock: ManualClock) -> None:
    """An app backend pushes to buyers, the Slack bot posts the staff's: same outbox, each
    notification delivered once, by the process opened for its audience."""
    backend_sink, bot_sink = MemoryNotifier(), MemoryNotifier()
    backend = open_flow(store_url, clock=clock, notifier=backend_sink, audiences=["buyer"])
    bot = open_flow(store_url, clock=clock, notifier=bot_sink, audiences=["staff"])
    try:
        backend.catalogue.add(
            PM,
            sku="coins",
            title="Coins",
            description="a bag",
            price=Money(99, "USD"),
            kind="consumable",
        )
        order = backend.orders.place(BUYER, "coins")
        backend.orders.pay(BUYER, order.id, token="tok_approve")
        backend.refunds.request(BUYER, order.id, reason="bought by mistake")
        # the backend sent the buyer's confirmation at once and left the review request
        assert [n.topic for n in backend_sink.sent] == ["order.paid"]
        assert backend.deliver_notifications() == 0
        assert bot.deliver_notifications() == 1
        assert [(n.topic, n.audience) for n in bot_sink.sent] == [
            ("refund.review_requested", Audience.STAFF)
        ]
        assert bot.deliver_notifications() == 0
        assert [n.topic for n in backend_sink.sent] == ["order.paid"]
    finally:
        backend.close()
        bot.close()


def test_failed_deliveries_stay_pending_until_sent(store_url: str, clock: ManualClock) -> None:
    notifier = FlakyNotifier()
    with open_flow(store_url, clock=clock, notifier=notifier) as flow:
        ticket = flow.feedback.submit(BUYER, rating=4, body="fine")
        flow.feedback.answer(AGENT, ticket.id, body="glad to hear")
        assert notifier.sent == []
        assert flow.deliver_notifications() == 0
        notifier.down = False
        assert flow.deliver_notifications() == 2
        assert [n.topic for n in notifier.sent] == ["ticket.opened", "ticket.answered"]
        assert flow.deliver_notifications() == 0


def test_a_stale_version_is_refused_and_its_transaction_writes_nothing(flow: Flow) -> None:
    order = flow.orders.place(BUYER, "gems")
    store = flow.store
    with pytest.raises(ConcurrentModification) as caught, store.transaction() as tx:
        tx.add_audit(AuditEvent("order", order.id, "deliver", "x", "y", "dev", "developer", START))
        stale = attrs.evolve(order, status=OrderStatus.PAID, version=5)
        tx.update_order(stale, expected_version=4)
    assert (caught.value.kind, caught.value.id, caught.value.expected_version) == (
        "order",
        order.id,
        4,
    )
    assert store.get_order(order.id) == order
    assert [e.event for e in store.history(order.id)] == ["place"]

    with store.transaction() as tx:  # the current version goes through
        tx.update_order(attrs.evolve(order, status=OrderStatus.CANCELLED, version=2), 1)
    assert store.get_order(order.id).status == "cancelled"  # type: ignore[union-attr]

    product = store.get_product("gems")
    assert product is not None
    with pytest.raises(ConcurrentModification), store.transaction() as tx:
        tx.update_product(attrs.evolve(product, title="New", version=9), expected_version=8)
    assert store.get_product("gems") == product


def test_refunds_and_tickets_are_version_checked(flow: Flow) -> None:
    store = flow.store
    order = flow.orders.pay(BUYER, flow.orders.place(BUYER, "gems").id, token="tok_approve")
    refund = flow.refunds.request(BUYER, order.id, reason="oops")
    ticket = flow.feedback.submit(BUYER, rating=3, body="ok")
    with pytest.raises(ConcurrentModification, match=refund.id), store.transaction() as tx:
        tx.update_refund(attrs.evolve(refund, version=9), expected_version=8)
    with pytest.raises(ConcurrentModification, match=ticket.id), store.transaction() as tx:
        tx.update_ticket(attrs.evolve(ticket, version=9), expected_version=8)
    with store.transaction() as tx:
        tx.update_refund(attrs.evolve(refund, reason="changed", version=3), refund.version)
        tx.update_ticket(attrs.evolve(ticket, body="changed", version=2), ticket.version)
    assert flow.refunds.get(DEV, refund.id).reason == "changed"
    assert flow.feedback.get(DEV, ticket.id).body == "changed"


def test_remember_event_records_each_id_once(flow: Flow) -> None:
    store = flow.store
    with store.transaction() as tx:
        assert tx.remember_event("apple", "evt-1", START)
    with store.transaction() as tx:
        assert not tx.remember_event("apple", "evt-1", START, '{"outcome": "other"}')
        assert tx.remember_event("google", "evt-1", START, '{"outcome": "paid"}')
    with store.transaction() as tx:
        assert tx.event_result("apple", "evt-1") is None  # recorded first without a result
        assert tx.event_result("google", "evt-1") == '{"outcome": "paid"}'
        assert tx.event_result("google", "evt-2") is None


def _scripted_history(flow: Flow, clock: ManualClock) -> Report:
    """The same purchases, refunds, reviews and ratings on any store; returns the report."""
    pm = Actor("pm", "product_manager")
    flow.catalogue.add(
        pm, sku="coins", title="Coins", description="c", price=Money(500, "EUR"), kind="consumable"
    )
    paid = []
    for i in range(6):
        buyer = Actor.buyer(f"u{i % 3}")
        order = flow.orders.place(buyer, "gems" if i % 2 else "coins")
        if i == 5:
            continue  # stays unpaid and expires
        paid.append((buyer, flow.orders.pay(buyer, order.id, token="tok_approve")))
        clock.advance(timedelta(minutes=7))
    for n, (buyer, order) in enumerate(paid[:4]):
        refund = flow.refunds.request(buyer, order.id, reason="not needed")
        clock.advance(timedelta(hours=1 + n, seconds=13))
        if n == 0:
            flow.refunds.approve(AGENT, refund.id)
        elif n == 1:
            flow.refunds.reject(AGENT, refund.id, reason="used already")
        elif n == 2:
            flow.refunds.approve(Actor.lead("l1"), refund.id)
    for rating in (5, 4, 4, 1):
        flow.feedback.submit(Actor.buyer("u9"), rating=rating, body="thoughts")
    clock.advance(timedelta(hours=80))
    flow.sweep()
    return flow.report(DEV, since=START, until=START + timedelta(days=30))


def test_report_figures_are_the_same_on_every_store(flow: Flow, clock: ManualClock) -> None:
    report = _scripted_history(flow, clock)
    ref_clock = ManualClock(START)
    with open_flow("sqlite://", clock=ref_clock, notifier=MemoryNotifier(), seed=1) as ref:
        ref.catalogue.add(
            Actor("pm", "product_manager"),
            sku="gems",
            title="Gems",
            description="100 gems",
            price=Money(199, "USD"),
            kind="consumable",
        )
        expected = _scripted_history(ref, ref_clock)
    assert report.orders_by_status == expected.orders_by_status
    assert report.orders_by_status["expired"] == 1
    assert sorted(map(str, report.revenue)) == sorted(map(str, expected.revenue))
    assert sorted(map(str, report.refunded)) == sorted(map(str, expected.refunded))
    assert report.refunds_by_status == expected.refunds_by_status
    assert report.refund_rate == expected.refund_rate == 2 / 5
    assert report.breaches == expected.breaches
    assert report.breaches == {
        "refund_review": 1,
        "ticket_first_response": 4,
        "ticket_resolution": 4,
    }
    assert report.ratings == expected.ratings == {5: 1, 4: 2, 1: 1}
    assert report.average_rating == expected.average_rating
    for ours, theirs in [
        (report.review_p50_seconds, expected.review_p50_seconds),
        (report.review_p95_seconds, expected.review_p95_seconds),
    ]:
        assert ours == pytest.approx(theirs, abs=0.01)
    assert report.review_p95_seconds == pytest.approx(3 * 3600 + 13, abs=0.01)


def test_schema_version_is_recorded_and_reopening_changes_nothing(
    flow: Flow, store_url: str, clock: ManualClock
) -> None:
    order = flow.orders.place(BUYER, "gems")
    version = flow.store.schema_version  # type: ignore[attr-defined]
    assert version >= 1
    with open_flow(store_url, clock=clock) as again:
        assert again.store.schema_version == version  # type: ignore[attr-defined]
        assert again.orders.get(DEV, order.id) == order
        assert [p.sku for p in again.catalogue.products()] == ["club", "gems"]


def test_a_newer_schema_is_refused(
    flow: Flow, store_url: str, raw_sql: Callable[[str], object]
) -> None:
    flow.orders.place(BUYER, "gems")
    version = flow.store.schema_version  # type: ignore[attr-defined]
    raw_sql("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="999"):
        open_flow(store_url)
    raw_sql(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")
    with open_flow(store_url) as again:
        assert again.orders.query(DEV).items[0].user_id == "u1"
    assert flow.history(SYSTEM, flow.orders.query(DEV).items[0].id)[0].event == "place"


def test_an_upgrade_keeps_the_webhooks_processed_events(
    flow: Flow, store_url: str, raw_sql: Callable[[str], object]
) -> None:
    """Before the event records had a result column, a store notification's result was kept
    in the idempotency table under ``webhook:<source>:<id>``; the upgrade moves it."""
    version = flow.store.schema_version  # type: ignore[attr-defined]
    flow.close()
    raw_sql("ALTER TABLE processed_events DROP COLUMN result")
    raw_sql(
        "INSERT INTO idempotency (key, command, fingerprint, result, created_at) VALUES"
        " ('webhook:apple:n:1', 'inbound', '', '{\"outcome\": \"paid\"}',"
        " '2026-03-02T09:00:00.000000+00:00')"
    )
    raw_sql(f"UPDATE meta SET value = '{version - 1}' WHERE key = 'schema_version'")
    with open_flow(store_url) as again:
        assert again.store.schema_version == version  # type: ignore[attr-defined]
        assert again.event_result(SYSTEM, "apple", "n:1") == {"outcome": "paid"}
        assert not again.record_event(SYSTEM, "apple", "n:1", {"outcome": "other"})
    assert raw_sql("SELECT key FROM idempotency") == []


def test_a_nested_transaction_is_a_savepoint(flow: Flow) -> None:
    store = flow.store
    order = flow.orders.place(BUYER, "gems")
    event = AuditEvent("order", order.id, "note", "x", "x", "dev", "developer", START)
    with store.transaction() as outer:
        outer.add_audit(event)
        with pytest.raises(ConcurrentModification), store.transaction() as inner:
            inner.add_audit(event)
            inner.update_order(attrs.evolve(order, version=9), expected_version=8)
        assert store.get_order(order.id) == order  # a read inside sees the same transaction
    assert [e.event for e in store.history(order.id)] == ["place", "note"]


def test_a_tickets_service_level_is_kept(flow: Flow, clock: ManualClock) -> None:
    """Priority, due times, the wait on the buyer, the escalation level and a bad rating's
    reason survive the store, and the paused clock resumes from what was stored."""
    ticket = flow.feedback.submit(BUYER, rating=1, body="late", priority="high")
    clock.advance(timedelta(minutes=30))
    waiting = flow.feedback.ask_buyer(AGENT, ticket.id, body="Which device?")
    stored = flow.feedback.get(DEV, ticket.id)
    assert stored == waiting
    assert (stored.priority.value, stored.waiting_since, stored.reason) == (
        "high",
        clock.now(),
        None,
    )
    assert stored.first_response_due == ticket.created_at + timedelta(hours=2)
    assert flow.store.pending_deadlines(ticket.id) == []
    clock.advance(timedelta(days=1))
    flow.feedback.buyer_reply(BUYER, ticket.id, body="iPhone")
    flow.feedback.explain(BUYER, ticket.id, reason="slow_delivery")
    due = {d.kind.value: d.due_at for d in flow.store.pending_deadlines(ticket.id)}
    assert due["ticket_first_response"] == clock.now() + timedelta(minutes=90)
    clock.advance(timedelta(hours=2))
    flow.sweep()
    again = flow.feedback.get(DEV, ticket.id)
    assert (again.level, again.reason, again.waiting_since) == (1, "slow_delivery", None)
    assert again.first_response_due == due["ticket_first_response"]
