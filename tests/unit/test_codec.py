"""Rows <-> records: every store and the idempotency log go through these, so they must
round-trip exactly, keep times sortable as text and refuse stored values they do not know."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iap_flow import (
    Money,
    Order,
    OrderStatus,
    Period,
    Platform,
    Product,
    ProductKind,
    RefundRequest,
    RefundStatus,
    StoreError,
    Ticket,
    TicketMessage,
    TicketStatus,
    codec,
)
from iap_flow.services import results

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
maybe_times = st.none() | times
ids = st.text("abcdefghjk0123456789_", min_size=1, max_size=20)
texts = st.text(min_size=1, max_size=40)
money = st.builds(Money, st.integers(0, 10**9), st.sampled_from(["USD", "EUR", "JPY"]))

orders = st.builds(
    Order,
    id=ids,
    user_id=ids,
    sku=ids,
    title=texts,
    kind=st.sampled_from(ProductKind),
    amount=money,
    platform=st.sampled_from(Platform),
    status=st.sampled_from(OrderStatus),
    created_at=times,
    updated_at=times,
    version=st.integers(1, 100),
    period=st.none() | st.sampled_from(Period),
    platform_transaction_id=st.none() | ids,
    subscription_id=st.none() | ids,
    paid_at=maybe_times,
)
refunds = st.builds(
    RefundRequest,
    id=ids,
    order_id=ids,
    user_id=ids,
    amount=money,
    reason=texts,
    status=st.sampled_from(RefundStatus),
    created_at=times,
    updated_at=times,
    version=st.integers(1, 100),
    platform=st.sampled_from(Platform),
    review_due_at=maybe_times,
    decided_by=st.none() | ids,
    decided_at=maybe_times,
    decision_note=st.none() | texts,
    escalated=st.booleans(),
    attempts=st.integers(0, 9),
    platform_refund_id=st.none() | ids,
    last_error=st.none() | texts,
)
tickets = st.builds(
    Ticket,
    id=ids,
    user_id=ids,
    rating=st.integers(1, 5),
    body=texts,
    status=st.sampled_from(TicketStatus),
    created_at=times,
    updated_at=times,
    version=st.integers(1, 100),
    order_id=st.none() | ids,
    first_response_at=maybe_times,
    resolved_at=maybe_times,
    escalated=st.booleans(),
    reopen_count=st.integers(0, 5),
    messages=st.lists(
        st.builds(
            TicketMessage, ids, ids, st.sampled_from(["buyer", "support_agent"]), texts, times
        ),
        max_size=3,
    ),
)
products = st.builds(
    Product,
    sku=ids,
    title=texts,
    description=texts,
    price=money,
    kind=st.sampled_from(ProductKind),
    period=st.none() | st.sampled_from(Period),
    active=st.booleans(),
    version=st.integers(1, 100),
    created_at=maybe_times,
    updated_at=maybe_times,
)


@given(order=orders)
def test_orders_round_trip(order: Order) -> None:
    row = codec.order_row(order)
    assert len(row) == len(codec.ORDER_COLUMNS)
    assert codec.order_from(row) == order
    assert codec.clone_order(order) == order
    assert codec.clone_order(order) is not order


@given(refund=refunds)
def test_refunds_round_trip(refund: RefundRequest) -> None:
    assert codec.refund_from(codec.refund_row(refund)) == refund


@given(ticket=tickets)
def test_tickets_round_trip_with_their_messages(ticket: Ticket) -> None:
    row = codec.ticket_row(ticket)
    messages = [codec.message_from(codec.message_row(m)) for m in ticket.messages]
    assert codec.ticket_from(row, messages) == ticket


@given(product=products)
def test_products_round_trip(product: Product) -> None:
    assert codec.product_from(codec.product_row(product)) == product
    row = codec.product_row(product)
    assert codec.product_from([row[c] for c in codec.PRODUCT_COLUMNS]) == product


@given(record=orders | refunds | tickets | products)
def test_idempotent_results_load_back_equal(record: Any) -> None:
    assert results.load_result(results.dump_result(record)) == record


def test_only_records_can_be_stored_as_results() -> None:
    with pytest.raises(TypeError):
        results.dump_result({"not": "a record"})
    with pytest.raises(StoreError):
        results.load_result('{"kind": "spaceship", "row": {}}')


@given(a=times, b=times)
def test_stored_times_sort_as_text_like_the_times(a: datetime, b: datetime) -> None:
    ta, tb = codec.ts(a), codec.ts(b)
    assert len(ta) == len(tb) == len("2026-01-01T00:00:00.000000+00:00")
    assert (ta < tb) == (a < b)
    assert datetime.fromisoformat(ta) == a


@given(seq=st.lists(times, min_size=1, max_size=10))
def test_time_text_is_right_whatever_was_converted_before(seq: list[datetime]) -> None:
    """``ts`` remembers its last answer; the memo must never give one time another's text."""
    for dt in seq + seq[::-1]:
        assert codec.ts(dt) == dt.isoformat(timespec="microseconds")
        same_instant = dt + timedelta(0)
        assert codec.ts(same_instant) == codec.ts(dt)


def _order_values(**changes: Any) -> list[Any]:
    order = Order(
        id="ord_1",
        user_id="u1",
        sku="gems",
        title="Gems",
        kind=ProductKind.CONSUMABLE,
        amount=Money(199, "USD"),
        platform=Platform.SANDBOX,
        status=OrderStatus.PAID,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    row = list(codec.order_row(order))
    for column, value in changes.items():
        row[codec.ORDER_COLUMNS.index(column)] = value
    return row


@pytest.mark.parametrize(
    ("column", "value"), [("status", "shipped"), ("kind", "gadget"), ("platform", "steam")]
)
def test_an_unknown_stored_value_is_a_store_error_naming_the_record(
    column: str, value: str
) -> None:
    with pytest.raises(StoreError, match="ord_1"):
        codec.order_from(_order_values(**{column: value}))


def test_unknown_stored_refund_and_ticket_states_are_store_errors() -> None:
    refund = RefundRequest(
        "rfd_1",
        "ord_1",
        "u1",
        Money(1, "USD"),
        "r",
        RefundStatus.IN_REVIEW,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    row = codec.refund_row(refund) | {"status": "lost"}
    with pytest.raises(StoreError, match="lost"):
        codec.refund_from(row)
    ticket = Ticket("tkt_1", "u1", 3, "b", TicketStatus.OPEN, refund.created_at, refund.created_at)
    with pytest.raises(StoreError, match="closed"):
        codec.ticket_from(codec.ticket_row(ticket) | {"status": "closed"})


def test_a_cloned_order_has_every_field_of_the_original_in_its_place() -> None:
    """Every field set away from its default, and every text field different: a field left
    to its default or two fields swapped would show."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    order = Order(
        id="ord_1",
        user_id="user_1",
        sku="sku_1",
        title="title_1",
        kind=ProductKind.SUBSCRIPTION,
        amount=Money(499, "EUR"),
        platform=Platform.GOOGLE_PLAY,
        status=OrderStatus.PAID,
        created_at=at,
        updated_at=at + timedelta(seconds=1),
        version=7,
        period=Period.MONTH,
        platform_transaction_id="txn_1",
        subscription_id="sub_1",
        paid_at=at + timedelta(seconds=2),
        refunded_amount=100,
    )
    defaults = {f.name: f.default for f in attrs.fields(Order)}
    assert all(getattr(order, name) != default for name, default in defaults.items())
    clone = codec.clone_order(order)
    assert clone is not order
    for name in defaults:
        assert getattr(clone, name) is getattr(order, name), name
    clone.status = OrderStatus.REFUNDED
    assert order.status is OrderStatus.PAID


def test_time_text_is_right_when_threads_convert_at_once() -> None:
    """Flows in several threads share ``ts``'s memo: each thread converts its own times twice
    in a row (the second a memo hit, unless another thread got in between) and must always
    get its own time's text. Switching threads as often as the interpreter allows gives the
    others every chance to get in between."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    wrong: list[tuple[str, str]] = []

    def convert(k: int) -> None:
        times = [base + timedelta(seconds=k, microseconds=i) for i in range(50)]
        wanted = [t.isoformat(timespec="microseconds") for t in times]
        for _ in range(300):
            for t, want in zip(times, wanted, strict=True):
                codec.ts(t)
                got = codec.ts(t)
                if got != want:
                    wrong.append((want, got))
                    return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=convert, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_an_order_stored_before_refunded_totals_has_refunded_nothing() -> None:
    """Idempotent results written before schema 7 hold an order row without its refunded
    total: it reads back as nothing refunded."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    order = codec.order_from(
        ("ord_1", "u1", "gems", "Gems", "consumable", None, 199, "USD", "sandbox", "txn_1",
         None, "paid", 2, at.isoformat(), at.isoformat(), at.isoformat())
    )  # fmt: skip
    assert (order.refunded_amount, order.refunded, order.refundable) == (
        0,
        Money(0, "USD"),
        Money(199, "USD"),
    )
