"""Every response the OpenAPI document promises can happen: the test walks ``/openapi.json``
of ``iap-flow serve`` (every store configured) and, for each route and each status it
documents, sends a real request that gets that status, with a body the document allows.

The walk and the table below must agree both ways: a status documented with no request
proving it fails, and so does a proof of a status the document does not name."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from apple_fakes import tamper
from deployment import Deployment, deployment
from play_fakes import product_purchase

from iap_flow import Actor, open_flow

Send = Callable[..., httpx.Response]
BIG = b"[" + b"0," * 40_000 + b"0]"  # over the 64 KiB limit, valid JSON


class World:
    """The running deployment and small factories of fresh records (one buyer a call)."""

    def __init__(self, d: Deployment) -> None:
        self.d, self.api = d, d.api

    @staticmethod
    def user() -> str:
        return f"u_{uuid.uuid4().hex[:10]}"

    def send(
        self,
        method: str,
        path: str,
        who: dict[str, str] | None = None,
        body: Any = None,
        **kw: Any,
    ) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return self.api.http.request(method, path, headers=who or {}, **kw)

    def b(self, user: str) -> dict[str, str]:
        return self.api.buyer(user)

    @staticmethod
    def s(key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    def order(self, user: str, sku: str = "gems", platform: str | None = None) -> str:
        r = self.send("POST", "/v1/orders", self.b(user), {"sku": sku, "platform": platform})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def paid(self, user: str) -> str:
        return self.api.paid_order(user, "gems")

    def refund(self, user: str) -> str:
        order_id = self.paid(user)
        r = self.send("POST", f"/v1/orders/{order_id}/refunds", self.b(user), {"reason": "x"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def ticket(self, user: str, *, answered: bool = False) -> str:
        r = self.send("POST", "/v1/feedback", self.b(user), {"rating": 2, "body": "meh"})
        assert r.status_code == 201, r.text
        ticket_id = str(r.json()["id"])
        if answered:
            path = f"/v1/staff/tickets/{ticket_id}/answer"
            a = self.send("POST", path, self.s("k_agent"), {"body": "try again"})
            assert a.status_code == 200, a.text
        return ticket_id

    def key_reused(
        self, method: str, first: str, second: str, who: dict[str, str], body: Any, then: Any = None
    ) -> Any:
        """``second`` (with the body ``then``, else ``body``) sent with the Idempotency-Key
        ``first`` was sent with."""
        key = {"Idempotency-Key": uuid.uuid4().hex}
        r = self.send(method, first, {**who, **key}, body)
        assert r.status_code < 300, r.text
        return self.send(method, second, {**who, **key}, body if then is None else then)

    def play_order(self, user: str, account: str, *, state: int = 0) -> tuple[str, str]:
        order_id = self.order(user, "badge", "google_play")
        token = f"tok-{uuid.uuid4().hex[:8]}"
        google_id = f"GPA.{uuid.uuid4().int % 10**16:016d}"
        self.d.play.purchases[token] = product_purchase(google_id, account, state=state)
        return order_id, token

    def attach(self, user: str, order_id: str, token: str, product: str = "badge") -> Any:
        return self.send(
            "POST",
            f"/v1/orders/{order_id}/purchases/google-play",
            self.b(user),
            {"purchase_token": token, "product_id": product},
        )


# -- what proves each (route, status) -----------------------------------------------------


def _orders(w: World, status: int) -> httpx.Response:
    u = w.user()
    if status == 200:
        return w.send("GET", "/v1/orders", w.b(u))
    return w.send("GET", "/v1/orders", w.b(u), params={"since": "yesterday"})


def _place(w: World, status: int) -> httpx.Response:
    u = w.user()
    sku = {201: "gems", 404: "none_such", 409: "retired", 422: "gems"}[status]
    if status == 422:
        return w.key_reused(
            "POST", "/v1/orders", "/v1/orders", w.b(u), {"sku": "badge"}, {"sku": "gems"}
        )
    return w.send("POST", "/v1/orders", w.b(u), {"sku": sku})


def _pay(w: World, status: int) -> httpx.Response:
    u = w.user()
    path = "/v1/orders/{}/pay"
    if status == 404:
        return w.send("POST", path.format("ord_none"), w.b(u), {"token": "tok_approve"})
    if status == 409:
        return w.send("POST", path.format(w.paid(u)), w.b(u), {"token": "tok_approve"})
    if status == 422:
        first, second = path.format(w.order(u)), path.format(w.order(u))
        return w.key_reused("POST", first, second, w.b(u), {"token": "tok_approve"})
    token = "tok_timeout" if status == 503 else "tok_approve"
    return w.send("POST", path.format(w.order(u)), w.b(u), {"token": token})


def _one_order(w: World, status: int) -> httpx.Response:
    u = w.user()
    order_id = w.paid(u) if status == 200 else w.paid(w.user())  # another buyer's: 404
    return w.send("GET", f"/v1/orders/{order_id}", w.b(u))


def _request_refund(w: World, status: int) -> httpx.Response:
    u = w.user()
    order_id = {201: w.paid, 404: lambda _: "ord_none", 409: w.order, 422: w.paid}[status](u)
    body: dict[str, Any] = {"reason": "never arrived"}
    if status == 422:
        body["amount"] = 10**9  # more than was paid
    return w.send("POST", f"/v1/orders/{order_id}/refunds", w.b(u), body)


def _withdraw(w: World, status: int) -> httpx.Response:
    u = w.user()
    path = "/v1/refunds/{}/withdraw"
    if status == 404:
        return w.send("POST", path.format(w.refund(w.user())), w.b(u))
    if status == 422:
        return w.key_reused(
            "POST", path.format(w.refund(u)), path.format(w.refund(u)), w.b(u), None
        )
    refund_id = w.refund(u)
    if status == 409:
        w.send("POST", path.format(refund_id), w.b(u))
    return w.send("POST", path.format(refund_id), w.b(u))


def _submit(w: World, status: int) -> httpx.Response:
    u = w.user()
    body: dict[str, Any] = {"rating": 4, "body": "fine"}
    if status == 404:
        body["order_id"] = w.paid(w.user())
    if status == 422:
        other = {**body, "rating": 1}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        assert w.send("POST", "/v1/feedback", {**w.b(u), **key}, body).status_code == 201
        return w.send("POST", "/v1/feedback", {**w.b(u), **key}, other)
    return w.send("POST", "/v1/feedback", w.b(u), body)


def _ticket(w: World, status: int) -> httpx.Response:
    u = w.user()
    ticket_id = w.ticket(u if status == 200 else w.user())
    return w.send("GET", f"/v1/feedback/{ticket_id}", w.b(u))


def _ticket_step(step: str, body: dict[str, Any]) -> Callable[[World, int], httpx.Response]:
    def prove(w: World, status: int) -> httpx.Response:
        u = w.user()
        path = f"/v1/feedback/{{}}/{step}"
        if status == 404:
            return w.send("POST", path.format(w.ticket(w.user(), answered=True)), w.b(u), body)
        if status == 422:
            first = path.format(w.ticket(u, answered=True))
            second = path.format(w.ticket(u, answered=True))
            return w.key_reused("POST", first, second, w.b(u), body)
        ticket_id = w.ticket(u, answered=status == 200)  # an open ticket cannot be reopened
        if status == 409 and step == "resolve":
            w.send("POST", path.format(ticket_id), w.b(u), body)
        return w.send("POST", path.format(ticket_id), w.b(u), body)

    return prove


def _attach_app_store(w: World, status: int) -> httpx.Response:
    u = w.user()
    apple = w.d.apple
    signed = apple.transaction("gems", datetime.now(UTC), account=u if status != 404 else "x")
    if status == 422:
        signed = tamper(signed, price=1)
    return w.send("POST", "/v1/purchases/app-store", w.b(u), {"signed_transaction": signed})


def _attach_google_play(w: World, status: int) -> httpx.Response:
    u = w.user()
    if status == 404:
        order_id, token = w.play_order(w.user(), "someone")
        return w.attach(u, order_id, token)
    order_id, token = w.play_order(
        u, "someone else" if status == 403 else u, state=2 * (status == 503)
    )
    if status == 409:
        assert w.attach(u, order_id, token).status_code == 200
    if status == 422:
        return w.attach(u, order_id, token, product="gems")
    return w.attach(u, order_id, token)


def _entitlements(path: str, who: dict[str, str]) -> Callable[[World, int], httpx.Response]:
    def prove(w: World, status: int) -> httpx.Response:
        headers = w.s("k_pm") if status == 403 else (who or w.b("u_ent"))
        params = {"at": "last week"} if status == 422 else {}
        return w.send("GET", path, headers, params=params)

    return prove


def _staff_queue(path: str) -> Callable[[World, int], httpx.Response]:
    def prove(w: World, status: int) -> httpx.Response:
        return w.send("GET", path, w.s("k_pm" if status == 403 else "k_lead"))

    return prove


def _staff_step(
    path: str, key: str, make: Callable[[World], str], close: str
) -> Callable[[World, int], httpx.Response]:
    """A staff decision on a fresh record (``make``): 403 for the product manager, 404 for
    no such record, 409 once it was ``close``d, 422 for a key used on another record."""

    def prove(w: World, status: int) -> httpx.Response:
        who = w.s("k_pm" if status == 403 else key)
        body = VALID[path]
        if status == 404:
            return w.send("POST", _concrete(path, "none_such"), who, body)
        if status == 422:
            first, second = _concrete(path, make(w)), _concrete(path, make(w))
            return w.key_reused("POST", first, second, who, body)
        record = make(w)
        if status == 409:
            closed = w.send("POST", _concrete(close, record), who, VALID[close])
            assert closed.status_code == 200, closed.text
        return w.send("POST", _concrete(path, record), who, body)

    return prove


def _decide(step: str) -> Callable[[World, int], httpx.Response]:
    path = f"/v1/staff/refunds/{{refund_id}}/{step}"
    return _staff_step(path, "k_lead", lambda w: w.refund(w.user()), path)


def _staff_ticket(step: str) -> Callable[[World, int], httpx.Response]:
    path = f"/v1/staff/tickets/{{ticket_id}}/{step}"
    resolve = "/v1/staff/tickets/{ticket_id}/resolve"  # closed: neither answered nor resolved
    return _staff_step(path, "k_agent", lambda w: w.ticket(w.user()), resolve)


def _staff_read(path: str) -> Callable[[World, int], httpx.Response]:
    def prove(w: World, status: int) -> httpx.Response:
        subject = "ord_none" if status == 404 else w.paid(w.user())
        return w.send("GET", path.format(subject), w.s("k_pm" if status == 403 else "k_agent"))

    return prove


def _add_product(w: World, status: int) -> httpx.Response:
    sku = "gems" if status == 422 else f"p_{uuid.uuid4().hex[:8]}"  # 422: already on sale
    body = {"sku": sku, "title": "T", "description": "D", "price": 100, "currency": "USD"}
    body["kind"] = "consumable"
    return w.send("POST", "/v1/staff/products", w.s("k_agent" if status == 403 else "k_pm"), body)


def _sweep(w: World, status: int) -> httpx.Response:
    return w.send("POST", "/v1/staff/sweep", w.s("k_agent" if status == 403 else "k_system"))


def _reconcile(w: World, status: int) -> httpx.Response:
    who = w.s("k_agent" if status == 403 else "k_system")  # agents do not reconcile
    sources = ["google_play"] * (2 if status == 422 else 1)  # 422: a source named twice
    return w.send("POST", "/v1/staff/reconcile", who, params={"source": sources})


def _readyz(w: World, status: int) -> httpx.Response:
    if status == 200:
        return w.send("GET", "/readyz")
    with sqlite3.connect(w.api.db) as db:  # as if a newer iap-flow had migrated the file
        (found,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        db.execute("UPDATE meta SET value = '9999' WHERE key = 'schema_version'")
    try:
        return w.send("GET", "/readyz")
    finally:
        with sqlite3.connect(w.api.db) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (found,))


def _get(path: str) -> Callable[[World, int], httpx.Response]:
    return lambda w, status: w.send("GET", path, w.b("u_get"))


SPECIFIC: dict[tuple[str, str], Callable[[World, int], httpx.Response]] = {
    ("GET", "/v1/products"): _get("/v1/products"),
    ("GET", "/v1/orders"): _orders,
    ("POST", "/v1/orders"): _place,
    ("POST", "/v1/orders/{order_id}/pay"): _pay,
    ("GET", "/v1/orders/{order_id}"): _one_order,
    ("POST", "/v1/orders/{order_id}/refunds"): _request_refund,
    ("POST", "/v1/refunds/{refund_id}/withdraw"): _withdraw,
    ("POST", "/v1/feedback"): _submit,
    ("GET", "/v1/feedback/{ticket_id}"): _ticket,
    ("POST", "/v1/feedback/{ticket_id}/reopen"): _ticket_step("reopen", {"body": "still broken"}),
    ("POST", "/v1/feedback/{ticket_id}/resolve"): _ticket_step("resolve", {}),
    ("POST", "/v1/purchases/app-store"): _attach_app_store,
    ("POST", "/v1/orders/{order_id}/purchases/google-play"): _attach_google_play,
    ("GET", "/v1/me/entitlements"): _entitlements("/v1/me/entitlements", {}),
    ("GET", "/v1/staff/users/{user_id}/entitlements"): _entitlements(
        "/v1/staff/users/u_ent/entitlements", {"X-Api-Key": "k_agent"}
    ),
    ("GET", "/v1/staff/refunds"): _staff_queue("/v1/staff/refunds"),
    ("POST", "/v1/staff/refunds/{refund_id}/approve"): _decide("approve"),
    ("POST", "/v1/staff/refunds/{refund_id}/reject"): _decide("reject"),
    ("GET", "/v1/staff/tickets"): _staff_queue("/v1/staff/tickets"),
    ("POST", "/v1/staff/tickets/{ticket_id}/answer"): _staff_ticket("answer"),
    ("POST", "/v1/staff/tickets/{ticket_id}/resolve"): _staff_ticket("resolve"),
    ("GET", "/v1/staff/orders/{order_id}"): _staff_read("/v1/staff/orders/{}"),
    ("GET", "/v1/staff/history/{subject_id}"): _staff_read("/v1/staff/history/{}"),
    ("POST", "/v1/staff/products"): _add_product,
    ("POST", "/v1/staff/sweep"): _sweep,
    ("POST", "/v1/staff/reconcile"): _reconcile,
    ("GET", "/healthz"): lambda w, status: w.send("GET", "/healthz"),
    ("GET", "/readyz"): _readyz,
    ("GET", "/metrics"): lambda w, status: w.send("GET", "/metrics"),
}
"""(method, route) -> a request getting the given status (its 2xx, 403, 404, 409, 422, 503)."""


# -- the statuses every route shares, proved from the document itself ---------------------


def _concrete(path: str, value: str = "x1") -> str:
    return "/".join(value if p.startswith("{") else p for p in path.split("/"))


def _authorised(operation: dict[str, Any]) -> dict[str, str]:
    schemes = {name for s in operation.get("security", []) for name in s}
    return {"X-Api-Key": "k_lead"} if "staffApiKey" in schemes else {}


VALID: dict[str, Any] = {
    "/v1/orders": {"sku": "gems"},
    "/v1/orders/{order_id}/pay": {"token": "tok_approve"},
    "/v1/orders/{order_id}/refunds": {"reason": "never arrived"},
    "/v1/feedback": {"rating": 3, "body": "ok"},
    "/v1/feedback/{ticket_id}/reopen": {"body": "again"},
    "/v1/feedback/{ticket_id}/resolve": {},
    "/v1/purchases/app-store": {"signed_transaction": "a.b.c"},
    "/v1/orders/{order_id}/purchases/google-play": {"purchase_token": "t", "product_id": "p"},
    "/v1/staff/refunds/{refund_id}/approve": {},
    "/v1/staff/refunds/{refund_id}/reject": {"reason": "already used up"},
    "/v1/staff/tickets/{ticket_id}/answer": {"body": "hello"},
    "/v1/staff/tickets/{ticket_id}/resolve": {},
    "/v1/staff/products": {
        "sku": "s",
        "title": "t",
        "description": "d",
        "price": 1,
        "currency": "USD",
        "kind": "consumable",
    },
}
"""A body each route accepts (what it reads is checked before who is asking)."""


def _generic(w: World, method: str, path: str, status: int, op: dict[str, Any]) -> httpx.Response:
    who = _authorised(op) or w.b("u_generic")
    if status == 401:  # no credentials at all
        return w.send(method, _concrete(path), {}, VALID.get(path))
    if status == 413:
        headers = {**who, "Content-Type": "application/json"}
        return w.send(method, _concrete(path), headers, content=BIG)
    assert status == 400
    if "requestBody" in op:  # a body that is not JSON
        headers = {**who, "Content-Type": "application/json"}
        return w.send(method, _concrete(path), headers, content=b'{"unterminated')
    params = op.get("parameters", [])
    if any(p["name"] == "Idempotency-Key" for p in params):  # a key longer than allowed
        return w.send(method, _concrete(path), {**who, "Idempotency-Key": "k" * 201})
    names = {p["name"] for p in params if p["in"] == "query"}
    if not names:  # an id longer than its path parameter allows
        return w.send(method, _concrete(path, "x" * 129), who)
    bad = {"limit": "0"} if "limit" in names else {name: "x" * 65 for name in names}
    return w.send(method, _concrete(path), who, params=bad)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with deployment(tmp_path_factory.mktemp("statuses")) as d:
        d.api.product("retired", 100)
        flow = open_flow(f"sqlite:///{d.api.db}")  # product managers retire it
        flow.catalogue.update(Actor("pm", "product_manager"), "retired", active=False)
        flow.close()
        yield World(d)


def _documented(world: World) -> list[tuple[str, str, int, dict[str, Any]]]:
    doc = world.send("GET", "/openapi.json").json()
    return [
        (method.upper(), path, int(status), op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post")
        for status in op["responses"]
    ]


def test_every_documented_route_has_a_proof(world: World) -> None:
    routes = {(m, p) for m, p, _, _ in _documented(world)}
    assert routes == set(SPECIFIC)


def test_every_documented_status_is_reachable(world: World) -> None:
    failures = []
    for method, path, status, op in _documented(world):
        if status in (400, 401, 413):
            r = _generic(world, method, path, status, op)
        else:
            r = SPECIFIC[method, path](world, status)
        wanted = op["responses"][str(status)]
        if r.status_code != status:
            failures.append(f"{method} {path} {status}: got {r.status_code} {r.text[:200]}")
            continue
        if status >= 400 and path.startswith("/v1/"):
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
            code = r.json()["code"]
            assert f"`{code}`" in wanted["description"], (method, path, status, code)
    assert not failures, "\n".join(failures)
