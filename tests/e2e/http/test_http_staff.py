"""Staff and system routes over real HTTP: API keys with roles, refund review, tickets, sweep."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from http_server import Api


def user() -> str:
    return "u_" + uuid.uuid4().hex[:10]


def refund_in_review(api: Api, sku: str = "gems_100") -> tuple[str, str, str]:
    name = user()
    order_id = api.paid_order(name, sku)
    r = api.post(f"/v1/orders/{order_id}/refunds", api.buyer(name), {"reason": "not what I wanted"})
    assert r.status_code == 201
    return name, order_id, r.json()["id"]


def test_refund_queue_and_approval_pays_out(api: Api) -> None:
    name, order_id, refund_id = refund_in_review(api)
    queue = api.get("/v1/staff/refunds", api.staff("k_agent")).json()
    assert refund_id in [r["refund"]["id"] for r in queue]
    mine = next(r for r in queue if r["refund"]["id"] == refund_id)
    assert mine["user_id"] == name and mine["platform"] == "sandbox"
    r = api.post(f"/v1/staff/refunds/{refund_id}/approve", api.staff("k_agent"), {"note": "ok"})
    assert r.status_code == 200
    assert r.json()["refund"]["status"] == "refunded" and r.json()["decided_by"] == "agent_1"
    order = api.get(f"/v1/orders/{order_id}", api.buyer(name)).json()
    assert order["order"]["status"] == "refunded"
    refunded = api.get("/v1/staff/refunds", api.staff("k_lead"), params={"status": "refunded"})
    assert refund_id in [x["refund"]["id"] for x in refunded.json()]


def test_staff_grant_part_of_a_refund_and_the_order_shows_it(api: Api) -> None:
    name, order_id, refund_id = refund_in_review(api)
    asked = api.get(f"/v1/orders/{order_id}", api.buyer(name)).json()["order"]["amount"]
    r = api.post(f"/v1/staff/refunds/{refund_id}/approve", api.staff("k_agent"), {"amount": 50})
    assert r.status_code == 200 and r.json()["refund"]["status"] == "refunded"
    assert r.json()["refund"]["amount"] == {"amount": 50, "currency": asked["currency"]}
    order = api.get(f"/v1/orders/{order_id}", api.buyer(name)).json()["order"]
    assert order["status"] == "partially_refunded"
    assert order["refunded"] == {"amount": 50, "currency": asked["currency"]}
    more = api.post(f"/v1/orders/{order_id}/refunds", api.buyer(name), {"reason": "the rest"})
    assert more.status_code == 201
    assert more.json()["amount"]["amount"] == asked["amount"] - 50


def test_rejection_reason_reaches_the_buyer(api: Api) -> None:
    name, order_id, refund_id = refund_in_review(api)
    r = api.post(
        f"/v1/staff/refunds/{refund_id}/reject",
        api.staff("k_lead"),
        {"reason": "the gems were already used"},
    )
    assert r.status_code == 200 and r.json()["refund"]["status"] == "rejected"
    seen = api.get(f"/v1/orders/{order_id}", api.buyer(name)).json()["refunds"][0]
    assert seen["status"] == "rejected" and seen["decision_note"] == "the gems were already used"
    short = api.post(f"/v1/staff/refunds/{refund_id}/reject", api.staff("k_lead"), {"reason": "no"})
    assert short.status_code == 400 and short.json()["detail"].startswith("reason:")


def test_agent_limit_and_two_deciders_at_once(api: Api) -> None:
    _, _, big = refund_in_review(api, "gems_big")
    r = api.post(f"/v1/staff/refunds/{big}/approve", api.staff("k_agent"), {})
    assert r.status_code == 403 and r.json()["code"] == "approval_limit_exceeded"
    assert "support lead" in r.json()["detail"]  # staff see the full message
    _, _, contested = refund_in_review(api)

    def decide(key: str) -> tuple[int, str]:
        path = f"/v1/staff/refunds/{contested}/"
        if key == "k_agent":
            resp = api.post(path + "approve", api.staff(key), {})
        else:
            resp = api.post(path + "reject", api.staff(key), {"reason": "duplicate request"})
        return resp.status_code, resp.json().get("code", "")

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(decide, ["k_agent", "k_lead"]))
    assert [status for status, _ in results].count(200) == 1
    loser = next(r for r in results if r[0] != 200)
    assert loser[0] == 409 and loser[1] in {
        "already_decided",
        "concurrent_modification",
        "transition_not_allowed",
    }


def test_roles_are_checked_per_action(api: Api) -> None:
    _, _, refund_id = refund_in_review(api)
    r = api.post(f"/v1/staff/refunds/{refund_id}/approve", api.staff("k_pm"), {})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = api.post("/v1/staff/sweep", api.staff("k_agent"))
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = api.post(
        "/v1/staff/products",
        api.staff("k_agent"),
        {
            "sku": "x1",
            "title": "x",
            "description": "x",
            "price": 1,
            "currency": "USD",
            "kind": "consumable",
        },
    )
    assert r.status_code == 403


def test_buyer_credentials_do_not_open_staff_routes(api: Api) -> None:
    r = api.get("/v1/staff/refunds", api.buyer(user()))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    r = api.get("/v1/products", api.staff("k_lead"))
    assert r.status_code == 401
    r = api.get("/v1/staff/refunds", {"X-Api-Key": "not-a-key"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown API key"


def test_ticket_queue_answer_and_resolve(api: Api) -> None:
    name = user()
    t = api.post("/v1/feedback", api.buyer(name), {"rating": 1, "body": "crashes"}).json()
    queue = api.get("/v1/staff/tickets", api.staff("k_agent")).json()
    assert t["id"] in [x["id"] for x in queue]
    r = api.post(
        f"/v1/staff/tickets/{t['id']}/answer", api.staff("k_agent"), {"body": "fixed in 2.1"}
    )
    assert r.status_code == 200 and r.json()["first_response_at"]
    r = api.post(f"/v1/staff/tickets/{t['id']}/resolve", api.staff("k_lead"), {})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    r = api.post(f"/v1/staff/tickets/{t['id']}/answer", api.staff("k_agent"), {"body": "again"})
    assert r.status_code == 409 and r.json()["code"] == "transition_not_allowed"
    r = api.post("/v1/staff/tickets/tkt_missing/answer", api.staff("k_agent"), {"body": "hi"})
    assert r.status_code == 404


def test_order_lookup_history_and_sweep(api: Api) -> None:
    name = user()
    order_id = api.paid_order(name)
    r = api.get(f"/v1/staff/orders/{order_id}", api.staff("k_agent"))
    assert r.status_code == 200 and r.json()["user_id"] == name
    trail = api.get(f"/v1/staff/history/{order_id}", api.staff("k_dev")).json()
    assert [(e["event"], e["actor_id"]) for e in trail][:2] == [("place", name), ("pay", name)]
    assert api.get("/v1/staff/history/ord_missing", api.staff("k_dev")).status_code == 404
    swept = api.post("/v1/staff/sweep", api.staff("k_system"))
    assert swept.status_code == 200
    assert set(swept.json()) == {"expired", "reminded", "escalated", "retried", "delivered"}


def test_catalogue_changes_need_a_product_manager(api: Api) -> None:
    sku = "sub_" + uuid.uuid4().hex[:6]
    api.product(sku, 999, "subscription")
    listed = {p["sku"]: p for p in api.get("/v1/products", api.buyer(user())).json()}
    assert listed[sku]["period"] == "month"
    body = {
        "sku": "bad sku!",
        "title": "t",
        "description": "d",
        "price": 1,
        "currency": "USD",
        "kind": "consumable",
    }
    r = api.post("/v1/staff/products", api.staff("k_pm"), body)
    assert r.status_code == 400 and r.json()["code"] == "malformed_request"
    r = api.post("/v1/staff/products", api.staff("k_pm"), {**body, "sku": "ok1", "price": -5})
    assert r.status_code == 400 and r.json()["detail"].startswith("price:")
    r = api.post("/v1/staff/products", api.staff("k_pm"), {**body, "sku": sku})
    assert r.status_code == 422 and r.json()["field"] == "sku"  # the SKU is taken
