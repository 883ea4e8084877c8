"""Google Play, played locally: androidpublisher v3 answered by a real HTTP server on
127.0.0.1, Google's OIDC signing certificates served by it (``/oauth2/v1/certs``), and
Pub/Sub push envelopes carrying real-time developer notifications with OIDC tokens signed
the way Pub/Sub signs them (RS256, ``kid`` naming one of the served certificates)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PACKAGE = "com.example.gems"
PREFIX = f"/androidpublisher/v3/applications/{PACKAGE}/"
SUBSCRIPTION = "projects/example/subscriptions/play-rtdn-push"
PUSHER = "rtdn-push@example.iam.gserviceaccount.com"
AUDIENCE = "https://backend.example.com/play/rtdn"
CERTS_PATH = "/oauth2/v1/certs"


class SigningKey:
    """An RSA key Google signs OIDC tokens with, and its certificate as Google serves it."""

    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "aud": AUDIENCE,
            "azp": "117236578945678901234",
            "email": PUSHER,
            "email_verified": True,
            "exp": now + 3600,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": "117236578945678901234",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


@attrs.define
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakePlay:
    """The androidpublisher endpoints the adapter calls, with Google's semantics: an order is
    refunded at most once (a second ``orders.refund`` is a 400), ``orders.get`` tells (with
    the order's ``purchaseToken``). With ``clock`` set, a one-time purchase neither
    acknowledged nor consumed 3 days after its ``purchaseTimeMillis`` is refunded and voided
    (``voidedReason`` 8), as Google does."""

    ACK_WINDOW = timedelta(days=3)

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.purchases: dict[str, dict[str, Any]] = {}  # token -> ProductPurchase
        self.subscriptions: dict[str, dict[str, Any]] = {}  # token -> SubscriptionPurchaseV2
        self.refunded: list[str] = []  # order ids Google refunded, in order
        self.refund_script: list[str] = []  # per refund call: "503", "refund_then_503"
        self.voided: list[dict[str, Any]] = []
        self.voided_page = 2
        self.orders: dict[str, dict[str, Any]] = {}  # order id -> Order fields (state, ...)
        self.clock: Any = None  # () -> datetime: Google's time, for the 3-day refunds
        self.ack_script: list[int] = []
        self.review_script: list[
            int
        ] = []  # per reviewrefund call: an HTTP status to fail  # per acknowledge/consume call: an HTTP status to fail
        self.keys = [SigningKey()]  # served at /oauth2/v1/certs
        self.certs_fetched = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                if body == {"cut": True}:  # the connection drops halfway through the answer
                    self.send_response(status)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"kind": "andr')
                    self.close_connection = True
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Cache-Control", "public, max-age=21600")
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

    def sign(self, **claims: Any) -> str:
        """``Bearer <token>`` as Pub/Sub sends it, signed with the newest served key."""
        return "Bearer " + self.keys[-1].token(**claims)

    def order_state(self, order_id: str) -> dict[str, Any] | None:
        """What orders.get says about an order: refunded ones as REFUNDED, orders a purchase
        or subscription names as PROCESSED, ``orders`` as given; None if Google has none."""
        token = next((t for t, p in self.purchases.items() if p.get("orderId") == order_id), None)
        token = token or next(
            (
                t
                for t, sub in self.subscriptions.items()
                for item in sub.get("lineItems") or []
                if item.get("latestSuccessfulOrderId") == order_id
            ),
            None,
        )
        named = {"purchaseToken": token} if token else {}
        if order_id in self.refunded:
            return {"orderId": order_id, "state": "REFUNDED", **named}
        if order_id in self.orders:
            return {"orderId": order_id, **named, **self.orders[order_id]}
        return {"orderId": order_id, "state": "PROCESSED", **named} if token else None

    def api_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path != CERTS_PATH]

    def refund_unacknowledged(self) -> list[str]:
        """As Google at its clock: refund and void each one-time purchase that was neither
        acknowledged nor consumed within 3 days. The order ids refunded now."""
        if self.clock is None:
            return []
        now, done = self.clock(), []
        for token, purchase in self.purchases.items():
            bought = datetime.fromtimestamp(int(purchase["purchaseTimeMillis"]) / 1000, UTC)
            told = purchase.get("acknowledgementState") == 1 or purchase.get("consumptionState")
            order_id = purchase.get("orderId")
            if told or now < bought + self.ACK_WINDOW or order_id in self.refunded:
                continue
            self.refunded.append(order_id)
            purchase["purchaseState"] = 1
            at = bought + self.ACK_WINDOW
            self.voided.append(
                {
                    "purchaseToken": token,
                    "orderId": order_id,
                    "purchaseTimeMillis": purchase["purchaseTimeMillis"],
                    "voidedTimeMillis": str(int(at.timestamp() * 1000)),
                    "voidedSource": 2,
                    "voidedReason": 8,  # unacknowledged_purchase
                }
            )
            done.append(order_id)
        return done

    def answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        self.refund_unacknowledged()
        if call.path == CERTS_PATH:
            self.certs_fetched += 1
            return 200, {k.kid: k.cert_pem for k in self.keys}
        if not call.path.startswith(PREFIX):
            return _error(404, "no such app")
        rest = call.path[len(PREFIX) :]
        parts = rest.split("/")
        if rest.endswith((":acknowledge", ":consume")) and call.method == "POST":
            if self.ack_script:
                return _error(self.ack_script.pop(0), "backend unavailable")
            return self._acknowledge(rest)
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
            # as Google: quantity-based partial refunds only for a caller who asks for them
            partial = call.query.get("includeQuantityBasedPartialRefund") == ["true"]
            listed = [v for v in self.voided if partial or not v.get("voidedQuantity")]
            page = listed[start : start + self.voided_page]
            body: dict[str, Any] = {"voidedPurchases": page}
            if start + self.voided_page < len(listed):
                body["tokenPagination"] = {"nextPageToken": str(start + self.voided_page)}
            return 200, body
        if rest.startswith("orders/") and rest.endswith(":refund"):
            order_id = rest[len("orders/") : -len(":refund")]
            step = self.refund_script.pop(0) if self.refund_script else "ok"
            if step == "503":
                return _error(503, "backend unavailable")
            if step == "refund_then_cut":  # refunded, then the answer is cut short
                self.refunded.append(order_id)
                return 200, {"cut": True}
            if order_id in self.refunded:
                return _error(400, "The order has already been refunded.")
            self.refunded.append(order_id)
            return (
                (503, {"error": {"code": 503, "message": "late"}})
                if step.endswith("503")
                else (200, {})
            )
        if rest.startswith("orders/") and rest.endswith(":reviewrefund"):
            if self.review_script:
                return _error(self.review_script.pop(0), "backend unavailable")
            return 200, {}
        if rest == "orders:batchGet" and call.method == "GET":
            found = [self.order_state(i) for i in call.query.get("orderIds", [])]
            if None in found:  # as Google: one unknown id fails the whole request
                return _error(404, "Order not found.")
            return 200, {"orders": found}
        if rest.startswith("orders/") and call.method == "GET":
            order = self.order_state(rest[len("orders/") :])
            return (200, order) if order is not None else _error(404, "Order not found.")
        return _error(404, "unknown endpoint")

    def _acknowledge(self, rest: str) -> tuple[int, dict[str, Any]]:
        """As Google: a second acknowledgement (or consumption) of a purchase is a 400."""
        path, _, verb = rest.rpartition(":")
        token = path.rsplit("/", 1)[1]
        if path.startswith("purchases/subscriptions/"):
            sub = self.subscriptions.get(token)
            if sub is None:
                return _error(404, "The purchase token was not found.")
            done = "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
            if sub.get("acknowledgementState") == done:
                return _error(400, "The subscription purchase is already acknowledged.")
            sub["acknowledgementState"] = done
            return 200, {}
        purchase = self.purchases.get(token)
        if purchase is None:
            return _error(404, "The purchase token was not found.")
        field = "consumptionState" if verb == "consume" else "acknowledgementState"
        if purchase.get(field) == 1:
            return _error(400, f"The purchase is already {verb}d.")
        purchase[field] = 1
        return 200, {}

    def acknowledged(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith((":acknowledge", ":consume"))]

    def refund_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(":refund")]

    def review_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(":reviewrefund")]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def certs_url(self) -> str:
        return self.url.rstrip("/") + CERTS_PATH

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


def voided(token: str, order_id: str, at_ms: int, *, refund_type: int = 1) -> dict[str, Any]:
    """A voidedPurchaseNotification: ``refund_type`` 1 full, 2 quantity-based partial."""
    return {
        "eventTimeMillis": str(at_ms),
        "voidedPurchaseNotification": {
            "purchaseToken": token,
            "orderId": order_id,
            "productType": 2,
            "refundType": refund_type,
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


def product_purchase(
    order_id: str, account: str, *, state: int = 0, quantity: int | None = None
) -> dict[str, Any]:
    extra = {} if quantity is None else {"quantity": quantity}
    return {
        **extra,
        "kind": "androidpublisher#productPurchase",
        "orderId": order_id,
        "purchaseState": state,
        "consumptionState": 0,
        "acknowledgementState": 0,
        "purchaseTimeMillis": "1772442000000",
        "obfuscatedExternalAccountId": account,
    }


def subscription_purchase(
    product_id: str,
    latest_order_id: str,
    account: str,
    *,
    state: str = "ACTIVE",
    expiry: datetime | None = None,
    linked_token: str | None = None,
    auto_renew: bool = True,
) -> dict[str, Any]:
    """A SubscriptionPurchaseV2 as ``purchases.subscriptionsv2.get`` answers it."""
    item: dict[str, Any] = {
        "productId": product_id,
        "latestSuccessfulOrderId": latest_order_id,
        "autoRenewingPlan": {"autoRenewEnabled": auto_renew},
    }
    if expiry is not None:
        item["expiryTime"] = expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    resource: dict[str, Any] = {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "subscriptionState": f"SUBSCRIPTION_STATE_{state}",
        "lineItems": [item],
        "externalAccountIdentifiers": {"obfuscatedExternalAccountId": account},
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_PENDING",
    }
    if linked_token is not None:
        resource["linkedPurchaseToken"] = linked_token
    return resource


def set_subscription(
    resource: dict[str, Any],
    *,
    state: str | None = None,
    expiry: datetime | None = None,
    latest_order_id: str | None = None,
) -> None:
    """Google's side of a change: the resource's state, line item expiry or latest order."""
    item = resource["lineItems"][0]
    if state is not None:
        resource["subscriptionState"] = f"SUBSCRIPTION_STATE_{state}"
        item["autoRenewingPlan"] = {"autoRenewEnabled": state not in ("CANCELED", "EXPIRED")}
    if expiry is not None:
        item["expiryTime"] = expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if latest_order_id is not None:
        item["latestSuccessfulOrderId"] = latest_order_id
