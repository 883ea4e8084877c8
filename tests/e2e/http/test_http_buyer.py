"""The mobile app's routes over real HTTP: what a buyer sees, and what another buyer cannot."""

from __future__ import annotations

import uuid

from http_server import Api


def user() -> str:
    return "u_" + uuid.uuid4().hex[:10]


def test_catalogue_lists_products_on_sale(api: Api) -> None:
    r = api.get("/v1/products", api.buyer(user()))
    assert r.status_code == 200
    by_sku = {p["sku"]: p for p in r.json()}
    assert by_sku["gems_100"]["price"] == {"amount": 499, "currency": "USD"}
    assert by_sku["gems_100"]["kind"] == "consumable"


def test_place_and_pay_an_order(api: Api) -> None:
    who = api.buyer(user())
    r = api.post("/v1/orders", who, {"sku": "gems_100"})
    assert r.status_code == 201
    order = r.json()
    assert order["status"] == "pending_payment" and order["amount"]["amount"] == 499
    r = api.post(f"/v1/orders/{order['id']}/pay", who, {"token": "tok_approve"})
    assert r.status_code == 200
    assert r.json()["status"] == "paid" and r.json()["paid_at"] is not None


def test_a_declined_payment_fails_the_order(api: Api) -> None:
    who = api.buyer(user())
    order = api.post("/v1/orders", who, {"sku": "gems_100"}).json()
    r = api.post(f"/v1/orders/{order['id']}/pay", who, {"token": "tok_decline"})
    assert r.status_code == 200 and r.json()["status"] == "payment_failed"


def test_platform_timeout_is_a_503_problem_and_changes_nothing(api: Api) -> None:
    who = api.buyer(user())
    order = api.post("/v1/orders", who, {"sku": "gems_100"}).json()
    r = api.post(f"/v1/orders/{order['id']}/pay", who, {"token": "tok_timeout"})
    assert r.status_code == 503 and r.json()["code"] == "platform_unavailable"
    assert r.headers["retry-after"]
    assert api.get(f"/v1/orders/{order['id']}", who).json()["order"]["status"] == "pending_payment"


def test_idempotency_key_returns_the_first_result(api: Api) -> None:
    who = api.buyer(user())
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/v1/orders", {**who, **key}, {"sku": "gems_100"})
    again = api.post("/v1/orders", {**who, **key}, {"sku": "gems_100"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(api.get("/v1/orders", who).json()["items"]) == 1
    other = api.post("/v1/orders", {**who, **key}, {"sku": "gems_big"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_buyer(api: Api) -> None:
    key = {"Idempotency-Key": "same-key-" + uuid.uuid4().hex}
    first = api.post("/v1/orders", {**api.buyer(user()), **key}, {"sku": "gems_100"})
    second = api.post("/v1/orders", {**api.buyer(user()), **key}, {"sku": "gems_big"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["sku"] == "gems_big"


def test_pay_twice_with_one_key_charges_once(api: Api) -> None:
    who = api.buyer(user())
    order = api.post("/v1/orders", who, {"sku": "gems_100"}).json()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    path = f"/v1/orders/{order['id']}/pay"
    first = api.post(path, {**who, **key}, {"token": "tok_approve"})
    again = api.post(path, {**who, **key}, {"token": "tok_approve"})
    assert first.json() == again.json()
    without_key = api.post(path, who, {"token": "tok_approve"})
    assert without_key.status_code == 409 and without_key.json()["code"] == "transition_not_allowed"


def test_my_orders_filters_by_status_and_time_and_pages_with_a_cursor(api: Api) -> None:
    name = user()
    who = api.buyer(name)
    paid = [api.paid_order(name) for _ in range(3)]
    pending = api.post("/v1/orders", who, {"sku": "gems_big"}).json()["id"]
    r = api.get("/v1/orders", who, params={"status": "paid", "limit": 2})
    page1 = r.json()
    assert [o["id"] for o in page1["items"]] == paid[::-1][:2]
    assert page1["next_cursor"]
    page2 = api.get(
        "/v1/orders", who, params={"status": "paid", "limit": 2, "cursor": page1["next_cursor"]}
    ).json()
    assert [o["id"] for o in page2["items"]] == [paid[0]] and page2["next_cursor"] is None
    both = api.get("/v1/orders", who, params={"status": ["paid", "pending_payment"]}).json()
    assert {o["id"] for o in both["items"]} == {*paid, pending}
    created = api.get(f"/v1/orders/{pending}", who).json()["order"]["created_at"]
    since = api.get("/v1/orders", who, params={"since": created}).json()
    assert [o["id"] for o in since["items"]] == [pending]
    until = api.get("/v1/orders", who, params={"until": created}).json()
    assert {o["id"] for o in until["items"]} == set(paid)
    for when in ("0.5", "2026-12-01T00:00:00", "yesterday"):
        r = api.get("/v1/orders", who, params={"since": when})
        assert r.status_code == 422 and r.json()["field"] == "since", when
    bad = api.get("/v1/orders", who, params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_request"
    reversed_window = api.get("/v1/orders", who, params={"since": created, "until": created})
    assert reversed_window.status_code == 422 and reversed_window.json()["field"] == "since"


def test_one_order_with_refunds_tickets_and_trail(api: Api) -> None:
    name = user()
    who = api.buyer(name)
    order_id = api.paid_order(name)
    refund = api.post(f"/v1/orders/{order_id}/refunds", who, {"reason": "bought by mistake"})
    assert refund.status_code == 201 and refund.json()["status"] == "in_review"
    ticket = api.post(
        "/v1/feedback",
        who,
        {
            "rating": 2,
            "body": "gems did not arrive",
            "order_id": order_id,
            "reason": "slow_delivery",
        },
    )
    assert ticket.status_code == 201
    assert (ticket.json()["reason"], ticket.json()["priority"]) == ("slow_delivery", "normal")
    unknown = api.post("/v1/feedback", who, {"rating": 1, "body": "x", "reason": "bored"})
    assert unknown.status_code == 400
    detail = api.get(f"/v1/orders/{order_id}", who).json()
    assert detail["order"]["id"] == order_id
    assert [r["id"] for r in detail["refunds"]] == [refund.json()["id"]]
    assert [t["id"] for t in detail["tickets"]] == [ticket.json()["id"]]
    events = [(e["subject_id"], e["event"], e["to_state"]) for e in detail["trail"]]
    assert (order_id, "place", "pending_payment") in events
    assert (order_id, "pay", "paid") in events
    assert any(subject == refund.json()["id"] for subject, _, _ in events)
    assert {e["by"] for e in detail["trail"]} <= {"buyer", "system"}
    assert "actor_id" not in detail["trail"][0]


def test_partial_refund_and_withdraw(api: Api) -> None:
    name = user()
    who = api.buyer(name)
    order_id = api.paid_order(name, "gems_big")
    r = api.post(f"/v1/orders/{order_id}/refunds", who, {"reason": "half of it", "amount": 5_000})
    assert r.status_code == 201 and r.json()["amount"] == {"amount": 5_000, "currency": "USD"}
    refund_id = r.json()["id"]
    w = api.post(f"/v1/refunds/{refund_id}/withdraw", who)
    assert w.status_code == 200 and w.json()["status"] == "withdrawn"
    again = api.post(f"/v1/refunds/{refund_id}/withdraw", who)
    assert again.status_code == 409 and again.json()["code"] == "transition_not_allowed"


def test_refund_of_an_unpaid_order_is_refused_with_a_buyer_message(api: Api) -> None:
    who = api.buyer(user())
    order = api.post("/v1/orders", who, {"sku": "gems_100"}).json()
    r = api.post(f"/v1/orders/{order['id']}/refunds", who, {"reason": "changed my mind"})
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "refund_not_allowed" and order["id"] in body["detail"]


def test_feedback_submit_reopen_resolve(api: Api) -> None:
    name = user()
    who = api.buyer(name)
    t = api.post("/v1/feedback", who, {"rating": 4, "body": "nice game"}).json()
    assert t["status"] == "open" and t["rating"] == 4
    answered = api.post(
        f"/v1/staff/tickets/{t['id']}/answer", api.staff("k_agent"), {"body": "thanks!"}
    )
    assert answered.status_code == 200 and answered.json()["status"] == "answered"
    reopened = api.post(f"/v1/feedback/{t['id']}/reopen", who, {"body": "one more thing"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "reopened"
    api.post(f"/v1/staff/tickets/{t['id']}/answer", api.staff("k_agent"), {"body": "done"})
    resolved = api.post(f"/v1/feedback/{t['id']}/resolve", who, {"note": "all good"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    seen = api.get(f"/v1/feedback/{t['id']}", who).json()
    assert [(m["role"], m["body"]) for m in seen["messages"]] == [
        ("support_agent", "thanks!"),
        ("buyer", "one more thing"),
        ("support_agent", "done"),
        ("buyer", "all good"),
    ]
    bad = api.post("/v1/feedback", who, {"rating": 9, "body": "x"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("rating:")
    blank = api.post("/v1/feedback", who, {"rating": 3, "body": "   "})
    assert blank.status_code == 400 and blank.json()["detail"].startswith("body:")


def test_another_buyers_records_are_not_found(api: Api) -> None:
    owner, other = user(), api.buyer(user())
    order_id = api.paid_order(owner)
    owner_h = api.buyer(owner)
    refund_id = api.post(
        f"/v1/orders/{order_id}/refunds", owner_h, {"reason": "not for me"}
    ).json()["id"]
    ticket_id = api.post("/v1/feedback", owner_h, {"rating": 3, "body": "meh"}).json()["id"]
    missing = api.get("/v1/orders/ord_00000000000000000000", other).json()
    attempts = [
        api.get(f"/v1/orders/{order_id}", other),
        api.post(f"/v1/orders/{order_id}/pay", other, {"token": "tok_approve"}),
        api.post(f"/v1/orders/{order_id}/refunds", other, {"reason": "give me money"}),
        api.post(f"/v1/refunds/{refund_id}/withdraw", other),
        api.get(f"/v1/feedback/{ticket_id}", other),
        api.post(f"/v1/feedback/{ticket_id}/reopen", other, {"body": "hi"}),
        api.post("/v1/feedback", other, {"rating": 1, "body": "x", "order_id": order_id}),
    ]
    for r in attempts:
        assert r.status_code == 404, r.text
        body = r.json()
        assert body["code"] == "not_found" and body["title"] == missing["title"]
        assert "may only" not in body["detail"] and "buyer" not in body["detail"]
    assert api.get(f"/v1/orders/{order_id}", owner_h).json()["refunds"][0]["status"] == "in_review"


def test_unknown_product_and_inactive_platform(api: Api) -> None:
    who = api.buyer(user())
    r = api.post("/v1/orders", who, {"sku": "nope"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = api.post("/v1/orders", who, {"sku": "gems_100", "platform": "google_play"})
    assert r.status_code == 422 and r.json()["field"] == "platform"


def test_app_store_purchases_are_served_only_when_configured(api: Api) -> None:
    r = api.post("/v1/purchases/app-store", api.buyer(user()), {"signed_transaction": "x.y.z"})
    assert r.status_code == 404 and r.json()["code"] == "route_not_found"
