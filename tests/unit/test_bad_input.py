"""Bad input for every public command: a typed error naming the field, and nothing written.

Each case calls the real public API with one thing wrong (a wrong type, an empty string, an
unknown id, money that is negative, a float or in the wrong currency, a rating out of range,
a naive datetime, a limit out of range, a bad cursor or status name...). The whole database
and the notifier are compared before and after: a refused command leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from iap_flow import (
    SYSTEM,
    IapFlowError,
    InvalidInput,
    Money,
    NotFound,
    PermissionDenied,
    ProductUnavailable,
    RefundNotAllowed,
    TransitionNotAllowed,
    open_flow,
)

Ids = dict[str, str]
Call = Callable[[Any, Ids], object]
NAIVE = datetime(2026, 3, 1)
LONG_ID = "x" * 129


@pytest.fixture
def ids(world: Any) -> Ids:
    """Records in known states for the cases to point at."""
    pm = world.pm
    world.flow.catalogue.add(
        pm, sku="retired", title="Old", description="d", price=Money(99, "USD"), kind="consumable"
    )
    world.flow.catalogue.update(pm, "retired", active=False)
    withdrawn = world.refund()
    world.flow.refunds.withdraw(world.buyer, withdrawn.id)
    return {
        "order": world.order().id,
        "pending": world.order(upto="pending_payment").id,
        "consumable_done": world.order(upto="completed").id,
        "sub": world.order("pro_month").id,
        "sub_pending": world.order("pro_month", upto="pending_payment").id,
        "others": world.order(buyer=world.other_buyer).id,
        "refund": world.refund().id,
        "withdrawn": withdrawn.id,
        "ticket": world.ticket().id,
        "resolved": world.ticket(upto="resolved").id,
    }


def bad(field: str | None, call: Call, error: type[IapFlowError] = InvalidInput) -> Any:
    """A case: ``call`` must raise ``error`` whose message names ``field``."""
    return (call, error, field)


def o(w: Any) -> Any:
    return w.flow.orders


def r(w: Any) -> Any:
    return w.flow.refunds


def f(w: Any) -> Any:
    return w.flow.feedback


def pe(w: Any) -> Any:
    return w.flow.platform_events


def cat(w: Any) -> Any:
    return w.flow.catalogue


def add(w: Any, **changes: Any) -> object:
    args: dict[str, Any] = {
        "sku": "new_sku",
        "title": "New",
        "description": "A new product",
        "price": Money(100, "USD"),
        "kind": "consumable",
    }
    return cat(w).add(w.pm, **{**args, **changes})


CASES: dict[str, Any] = {
    # catalogue
    "add/actor-str": bad(
        "actor",
        lambda w, i: cat(w).add(
            "pm_1", sku="s", title="t", description="d", price=Money(1, "USD"), kind="consumable"
        ),
    ),
    "add/sku-empty": bad("sku", lambda w, i: add(w, sku="")),
    "add/sku-space": bad("sku", lambda w, i: add(w, sku="two words")),
    "add/sku-int": bad("sku", lambda w, i: add(w, sku=5)),
    "add/sku-taken": bad("sku", lambda w, i: add(w, sku="gems")),
    "add/title-empty": bad("title", lambda w, i: add(w, title="  ")),
    "add/title-long": bad("title", lambda w, i: add(w, title="t" * 201)),
    "add/description-none": bad("description", lambda w, i: add(w, description=None)),
    "add/price-int": bad("price", lambda w, i: add(w, price=199)),
    "add/price-float": bad("price", lambda w, i: add(w, price=1.99)),
    "add/price-zero": bad("price", lambda w, i: add(w, price=Money(0, "USD"))),
    "add/kind-unknown": bad("kind", lambda w, i: add(w, kind="gadget")),
    "add/kind-none": bad("kind", lambda w, i: add(w, kind=None)),
    "add/sub-no-period": bad("period", lambda w, i: add(w, kind="subscription")),
    "add/sub-bad-period": bad(
        "period", lambda w, i: add(w, kind="subscription", period="fortnight")
    ),
    "add/consumable-period": bad("period", lambda w, i: add(w, period="month")),
    "add/key-empty": bad("idempotency_key", lambda w, i: add(w, idempotency_key="")),
    "add/key-int": bad("idempotency_key", lambda w, i: add(w, idempotency_key=7)),
    "update/unknown": bad("product", lambda w, i: cat(w).update(w.pm, "nope", title="T"), NotFound),
    "update/nothing": bad("nothing to change", lambda w, i: cat(w).update(w.pm, "gems")),
    "update/price-zero": bad(
        "price", lambda w, i: cat(w).update(w.pm, "gems", price=Money(0, "USD"))
    ),
    "update/price-str": bad("price", lambda w, i: cat(w).update(w.pm, "gems", price="2.99")),
    "update/active-str": bad("active", lambda w, i: cat(w).update(w.pm, "gems", active="no")),
    "update/title-empty": bad("title", lambda w, i: cat(w).update(w.pm, "gems", title="")),
    "update/sku-int": bad("sku", lambda w, i: cat(w).update(w.pm, 3, title="T")),
    "get-product/empty": bad("sku", lambda w, i: cat(w).get("")),
    "get-product/unknown": bad("nope", lambda w, i: cat(w).get("nope"), NotFound),
    # orders
    "place/actor-none": bad("actor", lambda w, i: o(w).place(None, "gems")),
    "place/sku-empty": bad("sku", lambda w, i: o(w).place(w.buyer, "")),
    "place/sku-list": bad("sku", lambda w, i: o(w).place(w.buyer, ["gems"])),
    "place/sku-unknown": bad("nope", lambda w, i: o(w).place(w.buyer, "nope"), NotFound),
    "place/inactive": bad(
        "retired", lambda w, i: o(w).place(w.buyer, "retired"), ProductUnavailable
    ),
    "place/platform-unknown": bad(
        "platform", lambda w, i: o(w).place(w.buyer, "gems", platform="steam")
    ),
    "place/platform-unconfigured": bad(
        "platform", lambda w, i: o(w).place(w.buyer, "gems", platform="app_store")
    ),
    "place/key-long": bad(
        "idempotency_key", lambda w, i: o(w).place(w.buyer, "gems", idempotency_key="k" * 201)
    ),
    "renew/unknown": bad(
        "ord_nope", lambda w, i: o(w).renew(SYSTEM, "ord_nope", token="tok_approve"), NotFound
    ),
    "renew/not-subscription": bad(
        "subscription_id", lambda w, i: o(w).renew(SYSTEM, i["order"], token="tok_approve")
    ),
    "renew/unpaid": bad(
        "subscription_id", lambda w, i: o(w).renew(SYSTEM, i["sub_pending"], token="tok_approve")
    ),
    "renew/token-empty": bad("token", lambda w, i: o(w).renew(SYSTEM, i["sub"], token="")),
    "renew/token-int": bad("token", lambda w, i: o(w).renew(SYSTEM, i["sub"], token=1)),
    "renew/id-empty": bad(
        "subscription_id", lambda w, i: o(w).renew(SYSTEM, "", token="tok_approve")
    ),
    "pay/unknown": bad(
        "ord_nope", lambda w, i: o(w).pay(w.buyer, "ord_nope", token="tok_approve"), NotFound
    ),
    "pay/id-long": bad("order_id", lambda w, i: o(w).pay(w.buyer, LONG_ID, token="tok_approve")),
    "pay/token-empty": bad("token", lambda w, i: o(w).pay(w.buyer, i["pending"], token="")),
    "pay/token-none": bad("token", lambda w, i: o(w).pay(w.buyer, i["pending"], token=None)),
    "pay/already-paid": bad(
        "paid",
        lambda w, i: o(w).pay(w.buyer, i["order"], token="tok_approve"),
        TransitionNotAllowed,
    ),
    "pay/key-empty": bad(
        "idempotency_key",
        lambda w, i: o(w).pay(w.buyer, i["pending"], token="tok_approve", idempotency_key=""),
    ),
    "hold/unknown": bad("ord_nope", lambda w, i: o(w).hold_delivery(SYSTEM, "ord_nope"), NotFound),
    "hold/pending": bad(
        "pending_payment",
        lambda w, i: o(w).hold_delivery(SYSTEM, i["pending"]),
        TransitionNotAllowed,
    ),
    "deliver/id-int": bad("order_id", lambda w, i: o(w).deliver(SYSTEM, 42)),
    "deliver/pending": bad(
        "pending_payment", lambda w, i: o(w).deliver(SYSTEM, i["pending"]), TransitionNotAllowed
    ),
    "complete/paid": bad(
        "paid", lambda w, i: o(w).complete(w.buyer, i["order"]), TransitionNotAllowed
    ),
    "complete/key-int": bad(
        "idempotency_key", lambda w, i: o(w).complete(w.buyer, i["order"], idempotency_key=1)
    ),
    "cancel/paid": bad("paid", lambda w, i: o(w).cancel(w.buyer, i["order"]), TransitionNotAllowed),
    "cancel/empty": bad("order_id", lambda w, i: o(w).cancel(w.buyer, " ")),
    "cancel/others": bad("own", lambda w, i: o(w).cancel(w.buyer, i["others"]), PermissionDenied),
    "get-order/unknown": bad("ord_nope", lambda w, i: o(w).get(SYSTEM, "ord_nope"), NotFound),
    "get-order/empty": bad("order_id", lambda w, i: o(w).get(SYSTEM, "")),
    "query/limit-0": bad("limit", lambda w, i: o(w).query(SYSTEM, limit=0)),
    "query/limit-201": bad("limit", lambda w, i: o(w).query(SYSTEM, limit=201)),
    "query/limit-bool": bad("limit", lambda w, i: o(w).query(SYSTEM, limit=True)),
    "query/limit-str": bad("limit", lambda w, i: o(w).query(SYSTEM, limit="20")),
    "query/status-unknown": bad("status", lambda w, i: o(w).query(SYSTEM, status="shipped")),
    "query/status-int": bad("status", lambda w, i: o(w).query(SYSTEM, status=5)),
    "query/status-one-bad": bad("status", lambda w, i: o(w).query(SYSTEM, status=["paid", "nope"])),
    "query/since-naive": bad("since", lambda w, i: o(w).query(SYSTEM, since=NAIVE)),
    "query/since-str": bad("since", lambda w, i: o(w).query(SYSTEM, since="2026-03-01")),
    "query/until-naive": bad("until", lambda w, i: o(w).query(SYSTEM, until=NAIVE)),
    "query/since-after-until": bad(
        "since", lambda w, i: o(w).query(SYSTEM, since=w.start, until=w.start - timedelta(1))
    ),
    "query/cursor-empty": bad("cursor", lambda w, i: o(w).query(SYSTEM, cursor="")),
    "query/cursor-garbage": bad("cursor", lambda w, i: o(w).query(SYSTEM, cursor="garbage")),
    "query/cursor-int": bad("cursor", lambda w, i: o(w).query(SYSTEM, cursor=3)),
    "query/user-empty": bad("user_id", lambda w, i: o(w).query(SYSTEM, user_id="")),
    "query/buyer-other-user": bad(
        "own", lambda w, i: o(w).query(w.buyer, user_id="u2"), PermissionDenied
    ),
    # refunds
    "request/unknown": bad(
        "ord_nope", lambda w, i: r(w).request(w.buyer, "ord_nope", reason="why"), NotFound
    ),
    "request/reason-empty": bad(
        "reason", lambda w, i: r(w).request(w.buyer, i["order"], reason="")
    ),
    "request/reason-int": bad("reason", lambda w, i: r(w).request(w.buyer, i["order"], reason=5)),
    "request/amount-int": bad(
        "amount", lambda w, i: r(w).request(w.buyer, i["order"], reason="why", amount=100)
    ),
    "request/amount-float": bad(
        "amount", lambda w, i: r(w).request(w.buyer, i["order"], reason="why", amount=1.5)
    ),
    "request/amount-zero": bad(
        "amount",
        lambda w, i: r(w).request(w.buyer, i["order"], reason="why", amount=Money(0, "USD")),
    ),
    "request/amount-over": bad(
        "amount",
        lambda w, i: r(w).request(w.buyer, i["order"], reason="why", amount=Money(200, "USD")),
    ),
    "request/amount-currency": bad(
        "amount",
        lambda w, i: r(w).request(w.buyer, i["order"], reason="why", amount=Money(100, "EUR")),
    ),
    "request/unpaid": bad(
        None, lambda w, i: r(w).request(w.buyer, i["pending"], reason="why"), RefundNotAllowed
    ),
    "request/others": bad(
        "own", lambda w, i: r(w).request(w.buyer, i["others"], reason="why"), PermissionDenied
    ),
    "approve/unknown": bad("rfd_nope", lambda w, i: r(w).approve(w.agent, "rfd_nope"), NotFound),
    "approve/id-int": bad("refund_id", lambda w, i: r(w).approve(w.agent, 1)),
    "approve/note-empty": bad("note", lambda w, i: r(w).approve(w.agent, i["refund"], note="")),
    "approve/withdrawn": bad(
        "withdrawn", lambda w, i: r(w).approve(w.agent, i["withdrawn"]), TransitionNotAllowed
    ),
    "approve/actor-dict": bad("actor", lambda w, i: r(w).approve({"id": "a"}, i["refund"])),
    "reject/reason-short": bad(
        "reason", lambda w, i: r(w).reject(w.agent, i["refund"], reason="no")
    ),
    "reject/reason-none": bad(
        "reason", lambda w, i: r(w).reject(w.agent, i["refund"], reason=None)
    ),
    "reject/unknown": bad(
        "rfd_nope", lambda w, i: r(w).reject(w.agent, "rfd_nope", reason="not eligible"), NotFound
    ),
    "withdraw/unknown": bad("rfd_nope", lambda w, i: r(w).withdraw(w.buyer, "rfd_nope"), NotFound),
    "withdraw/twice": bad(
        "withdrawn", lambda w, i: r(w).withdraw(w.buyer, i["withdrawn"]), TransitionNotAllowed
    ),
    "execute/unknown": bad("rfd_nope", lambda w, i: r(w).execute(SYSTEM, "rfd_nope"), NotFound),
    "execute/in-review": bad(
        "in_review", lambda w, i: r(w).execute(SYSTEM, i["refund"]), TransitionNotAllowed
    ),
    "platform-refunded/order-empty": bad(
        "order_id", lambda w, i: pe(w).refunded(SYSTEM, "", reason="voided")
    ),
    "platform-refunded/platform-id-int": bad(
        "platform_refund_id",
        lambda w, i: pe(w).refunded(SYSTEM, i["order"], reason="voided", platform_refund_id=5),
    ),
    "get-refund/unknown": bad("rfd_nope", lambda w, i: r(w).get(SYSTEM, "rfd_nope"), NotFound),
    "refund-queue/status": bad("status", lambda w, i: r(w).queue(SYSTEM, status="pending")),
    "refund-queue/status-int": bad("status", lambda w, i: r(w).queue(SYSTEM, status=3)),
    "refund-queue/limit": bad("limit", lambda w, i: r(w).queue(SYSTEM, limit=0)),
    "review/review-due-naive": bad(
        "review_due",
        lambda w, i: pe(w).review_requested(
            SYSTEM, i["order"], reason="platform", review_due=NAIVE
        ),
    ),
    "review/by-buyer": bad(
        "open_review",
        lambda w, i: pe(w).review_requested(
            w.buyer, i["order"], reason="why", review_due=w.start + timedelta(1)
        ),
        PermissionDenied,
    ),
    "answer-platform/in-review": bad(
        "refund_id", lambda w, i: r(w).answer_platform(SYSTEM, i["refund"])
    ),
    "answer-platform/unknown": bad(
        "rfd_nope", lambda w, i: r(w).answer_platform(SYSTEM, "rfd_nope"), NotFound
    ),
    # what a platform did by itself
    "purchased/platform": bad(
        "platform",
        lambda w, i: pe(w).purchased(
            SYSTEM, platform="steam", transaction_id="t", sku="gems", user_id="u1"
        ),
    ),
    "purchased/txn-empty": bad(
        "transaction_id",
        lambda w, i: pe(w).purchased(
            SYSTEM, platform="sandbox", transaction_id="", sku="gems", user_id="u1"
        ),
    ),
    "purchased/sku-int": bad(
        "sku",
        lambda w, i: pe(w).purchased(
            SYSTEM, platform="sandbox", transaction_id="t", sku=4, user_id="u1"
        ),
    ),
    "purchased/sku-unknown": bad(
        "nope",
        lambda w, i: pe(w).purchased(
            SYSTEM, platform="sandbox", transaction_id="t", sku="nope", user_id="u9"
        ),
        NotFound,
    ),
    "purchased/amount-int": bad(
        "amount",
        lambda w, i: pe(w).purchased(
            SYSTEM, platform="sandbox", transaction_id="t", sku="gems", user_id="u1", amount=199
        ),
    ),
    "purchased/no-user": bad(
        "user_id",
        lambda w, i: pe(w).purchased(SYSTEM, platform="sandbox", transaction_id="t", sku="gems"),
    ),
    "purchased/by-buyer": bad(
        "order.record",
        lambda w, i: pe(w).purchased(
            w.buyer, platform="sandbox", transaction_id="t", sku="gems", user_id="u1"
        ),
        PermissionDenied,
    ),
    "order-for-txn/empty": bad(
        "transaction_id", lambda w, i: pe(w).order_for_transaction(SYSTEM, "sandbox", "")
    ),
    "platform-refunded/unknown": bad(
        "ord_nope", lambda w, i: pe(w).refunded(SYSTEM, "ord_nope", reason="chargeback"), NotFound
    ),
    "platform-refunded/reason-empty": bad(
        "reason", lambda w, i: pe(w).refunded(SYSTEM, i["order"], reason="")
    ),
    "platform-declined/reason-int": bad(
        "reason", lambda w, i: pe(w).refund_declined(SYSTEM, i["order"], reason=1)
    ),
    "platform-reversed/never-refunded": bad(
        None, lambda w, i: pe(w).refund_reversed(SYSTEM, i["order"], reason="reversed"), NotFound
    ),
    # feedback
    "submit/rating-0": bad("rating", lambda w, i: f(w).submit(w.buyer, rating=0, body="meh")),
    "submit/rating-6": bad("rating", lambda w, i: f(w).submit(w.buyer, rating=6, body="meh")),
    "submit/rating-true": bad("rating", lambda w, i: f(w).submit(w.buyer, rating=True, body="meh")),
    "submit/rating-float": bad("rating", lambda w, i: f(w).submit(w.buyer, rating=4.5, body="meh")),
    "submit/rating-str": bad("rating", lambda w, i: f(w).submit(w.buyer, rating="5", body="meh")),
    "submit/body-empty": bad("body", lambda w, i: f(w).submit(w.buyer, rating=3, body="")),
    "submit/body-long": bad("body", lambda w, i: f(w).submit(w.buyer, rating=3, body="b" * 5001)),
    "submit/order-unknown": bad(
        "ord_nope",
        lambda w, i: f(w).submit(w.buyer, rating=3, body="x", order_id="ord_nope"),
        NotFound,
    ),
    "submit/order-others": bad(
        "own",
        lambda w, i: f(w).submit(w.buyer, rating=3, body="x", order_id=i["others"]),
        PermissionDenied,
    ),
    "answer/unknown": bad(
        "tkt_nope", lambda w, i: f(w).answer(w.agent, "tkt_nope", body="hi"), NotFound
    ),
    "answer/body-empty": bad("body", lambda w, i: f(w).answer(w.agent, i["ticket"], body=" ")),
    "answer/resolved": bad(
        "resolved",
        lambda w, i: f(w).answer(w.agent, i["resolved"], body="hi"),
        TransitionNotAllowed,
    ),
    "resolve/note-empty": bad("note", lambda w, i: f(w).resolve(w.agent, i["ticket"], note="")),
    "resolve/id-empty": bad("ticket_id", lambda w, i: f(w).resolve(w.agent, "")),
    "reopen/open": bad(
        "open", lambda w, i: f(w).reopen(w.buyer, i["ticket"], body="again"), TransitionNotAllowed
    ),
    "reopen/body-int": bad("body", lambda w, i: f(w).reopen(w.buyer, i["resolved"], body=3)),
    "get-ticket/unknown": bad("tkt_nope", lambda w, i: f(w).get(SYSTEM, "tkt_nope"), NotFound),
    "ticket-queue/status": bad("status", lambda w, i: f(w).queue(SYSTEM, status="closed")),
    "ticket-queue/status-int": bad("status", lambda w, i: f(w).queue(SYSTEM, status=2)),
    "ticket-queue/limit": bad("limit", lambda w, i: f(w).queue(SYSTEM, limit=1001)),
    # flow
    "sweep/actor-str": bad("actor", lambda w, i: w.flow.sweep("system")),
    "sweep/now-naive": bad("now", lambda w, i: w.flow.sweep(now=NAIVE)),
    "sweep/now-str": bad("now", lambda w, i: w.flow.sweep(now="2026-03-02")),
    "sweep/now-future": bad("now", lambda w, i: w.flow.sweep(now=w.start + timedelta(days=1))),
    "history/empty": bad("subject_id", lambda w, i: w.flow.history(SYSTEM, "")),
    "history/unknown": bad("ord_nope", lambda w, i: w.flow.history(SYSTEM, "ord_nope"), NotFound),
    "report/since-str": bad("since", lambda w, i: w.flow.report(w.dev, since="2026-03-01")),
    "report/since-naive": bad("since", lambda w, i: w.flow.report(w.dev, since=NAIVE)),
    "report/until-naive": bad("until", lambda w, i: w.flow.report(w.dev, until=NAIVE)),
    "report/since-after-until": bad(
        "since", lambda w, i: w.flow.report(w.dev, since=w.start, until=w.start - timedelta(1))
    ),
    "deliver/actor-int": bad("actor", lambda w, i: w.flow.deliver_notifications(1)),
}


@pytest.mark.parametrize(("call", "error", "field"), list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_with_a_typed_error_naming_the_field(
    world: Any, ids: Ids, call: Call, error: type[IapFlowError], field: str | None
) -> None:
    before, sent = world.snapshot(), len(world.notifier.sent)
    ledger = list(world.platform.ledger)
    with pytest.raises(error) as raised:
        call(world, ids)
    error_field = getattr(raised.value, "field", None)
    if field is not None:  # the message, or the error's field, says what was wrong
        assert field in str(raised.value) or error_field == field, str(raised.value)
    if isinstance(raised.value, InvalidInput) and field and field.isidentifier():
        assert error_field == field
    assert world.snapshot() == before
    assert len(world.notifier.sent) == sent
    assert world.platform.ledger == ledger


@pytest.mark.parametrize(
    "url",
    ["orders.db", "", "mysql://localhost/db", "sqlite:/relative.db", "sqlite:///no/such/dir/x.db"],
)
def test_open_flow_refuses_a_bad_url_naming_it(url: str) -> None:
    with pytest.raises(InvalidInput) as bad_url:
        open_flow(url)
    assert bad_url.value.field == "url"


def test_open_flow_needs_a_platform() -> None:
    with pytest.raises(InvalidInput, match="platform"):
        open_flow("sqlite://", platforms=[])
