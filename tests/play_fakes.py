"""Google Play, played locally: androidpublisher v3 answered by a real HTTP server on
127.0.0.1, and Pub/Sub push envelopes carrying real-time developer notifications."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

PACKAGE = "com.example.gems"
PREFIX = f"/androidpublisher/v3/applications/{PACKAGE}/"
SUBSCRIPTION = "projects/example/subscriptions/play-rtdn-push"


@attrs.define
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakePlay:
    """The androidpublisher endpoints the adapter calls, with Google's semantics: an order is
    refunded at most once (a second ``orders.refund`` is a 400), ``orders.get`` tells."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.purchases: dict[str, dict[str, Any]] = {}  # token -> ProductPurchase
        self.subscriptions: dict[str, dict[str, Any]] = {}  # token -> SubscriptionPurchaseV2
        self.refunded: list[str] = []  # order ids Google refunded, in order
        self.refund_script: list[str] = []  # per refund call: "503", "refund_then_503"
        self.voided: list[dict[str, Any]] = []
        self.voided_page = 2
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                call = Call(
                    self.command, url.path, parse_qs(url.query), json.loads(raw) if raw else None
                )
                fake.calls.append(call)
                status, body = fake.answer(call)
                self._reply(status, body)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        if not call.path.startswith(PREFIX):
            return _error(404, "no such app")
        rest = call.path[len(PREFIX) :]
        parts = rest.split("/")
        if rest.startswith("purchases/products/") and call.method == "GET":
            token = parts[-1]
            if token in self.purchases:
                return 200, self.purchases[token]
            return _error(404, "The purchase token was not found.")
        if rest.startswith("purchases/subscriptionsv2/tokens/"):
            token = parts[-1]
            if token in self.subscriptions:
                return 200, self.subscriptions[token]
            return _error(404, "The purchase token was not found.")
        if rest == "purchases/voidedpurchases":
            start = int((call.query.get("token") or ["0"])[0])
            page = self.voided[start : start + self.voided_page]
            body: dict[str, Any] = {"voidedPurchases": page}
            if start + self.voided_page < len(self.voided):
                body["tokenPagination"] = {"nextPageToken": str(start + self.voided_page)}
            return 200, body
        if rest.startswith("orders/") and rest.endswith(":refund"):
            order_id = rest[len("orders/") : -len(":refund")]
            step = self.refund_script.pop(0) if self.refund_script else "ok"
            if step == "503":
                return _error(503, "backend unavailable")
            if order_id in self.refunded:
                return _error(400, "The order has already been refunded.")
            self.refunded.append(order_id)
            return (
                (503, {"error": {"code": 503, "message": "late"}})
                if step.endswith("503")
                else (200, {})
            )
        if rest.startswith("orders/") and rest.endswith(":reviewrefund"):
            return 200, {}
        if rest.startswith("orders/") and call.method == "GET":
            order_id = rest[len("orders/") :]
            state = "REFUNDED" if order_id in self.refunded else "PROCESSED"
            return 200, {"orderId": order_id, "state": state}
        return _error(404, "unknown endpoint")

    def refund_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(":refund")]

    def review_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(":reviewrefund")]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakePlay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "errors": [{"message": message}]}}


def push(
    notification: dict[str, Any], message_id: str, *, package: str = PACKAGE
) -> dict[str, Any]:
    """A Pub/Sub push envelope carrying one DeveloperNotification, as Google sends it."""
    body = {"version": "1.0", "packageName": package, **notification}
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return {
        "message": {"data": data, "messageId": message_id, "publishTime": "2026-03-02T09:00:00Z"},
        "subscription": SUBSCRIPTION,
    }


def one_time(token: str, sku: str, at_ms: int, kind: int = 1) -> dict[str, Any]:
    return {
        "eventTimeMillis": str(at_ms),
        "oneTimeProductNotification": {
            "version": "1.0",
            "notificationType": kind,
            "purchaseToken": token,
            "sku": sku,
        },
    }


def subscription(token: str, at_ms: int, kind: int) -> dict[str, Any]:
    return {
        "eventTimeMillis": str(at_ms),
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": kind,
            "purchaseToken": token,
        },
    }


def voided(token: str, order_id: str, at_ms: int) -> dict[str, Any]:
    return {
        "eventTimeMillis": str(at_ms),
        "voidedPurchaseNotification": {
            "purchaseToken": token,
            "orderId": order_id,
            "productType": 2,
            "refundType": 1,
        },
    }


def refund_review(order_id: str, pending_token: str, at_ms: int) -> dict[str, Any]:
    return {
        "eventTimeMillis": str(at_ms),
        "pendingRefundReviewNotification": {
            "version": "1.0",
            "pendingRefundToken": pending_token,
            "orderId": order_id,
            "refundReason": 7,
        },
    }


def product_purchase(order_id: str, account: str, *, state: int = 0) -> dict[str, Any]:
    return {
        "kind": "androidpublisher#productPurchase",
        "orderId": order_id,
        "purchaseState": state,
        "consumptionState": 0,
        "acknowledgementState": 1,
        "purchaseTimeMillis": "1772442000000",
        "obfuscatedExternalAccountId": account,
    }


def subscription_purchase(product_id: str, latest_order_id: str, account: str) -> dict[str, Any]:
    return {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "subscriptionState": "SUBSCRIPTION_STATE_ACTIVE",
        "lineItems": [{"productId": product_id, "latestSuccessfulOrderId": latest_order_id}],
        "externalAccountIdentifiers": {"obfuscatedExternalAccountId": account},
    }
