"""A thin, typed wrapper over the androidpublisher v3 client (google-api-python-client).

The discovery document is the one shipped in the package (``static_discovery=True``): no
network call to build the client. Calls are serialised (httplib2 connections are not
thread-safe) and never retried here: the flow's own deadlines retry, with the same key.
"""

from __future__ import annotations

import threading
from typing import Any

import httplib2  # type: ignore[import-untyped]
from googleapiclient.discovery import build  # type: ignore[import-untyped]
from googleapiclient.errors import HttpError  # type: ignore[import-untyped]

from iap_flow.domain.errors import IapFlowError, PlatformUnavailable

SOURCE = "google_play"


class PlayApiError(IapFlowError):
    """Google Play answered with an HTTP error."""

    code = "play_api_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Google Play API answered {status}: {message}")
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.status == 429


def androidpublisher(
    *, credentials: Any = None, http: Any = None, api_endpoint: str | None = None
) -> Any:
    """Build the androidpublisher v3 service from the packaged discovery document.

    Pass ``credentials`` (a service account with access to the app in Play Console, e.g.
    ``google.oauth2.service_account.Credentials.from_service_account_file(path,
    scopes=["https://www.googleapis.com/auth/androidpublisher"])``), or an authorised
    ``http``. ``api_endpoint`` points it at another host (a test double or a proxy).
    """
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    return build(
        "androidpublisher",
        "v3",
        credentials=credentials,
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options=options,
    )


class PlayClient:
    """The androidpublisher calls the adapter makes, for one app (package)."""

    def __init__(self, service: Any, package_name: str) -> None:
        self.package_name = package_name
        self._service = service
        self._lock = threading.Lock()

    def _run(self, request: Any) -> dict[str, Any]:
        with self._lock:
            try:
                answer = request.execute(num_retries=0)
            except HttpError as exc:
                status = int(getattr(exc.resp, "status", 0) or 0)
                raise PlayApiError(status, _reason(exc)) from exc
            except (TimeoutError, OSError, httplib2.HttpLib2Error) as exc:
                raise PlatformUnavailable(f"Google Play API: {exc}", platform=SOURCE) from exc
        return answer if isinstance(answer, dict) else {}

    def product_purchase(self, product_id: str, token: str) -> dict[str, Any]:
        """purchases.products.get: a one-time purchase by its token."""
        products = self._service.purchases().products()
        return self._run(
            products.get(packageName=self.package_name, productId=product_id, token=token)
        )

    def acknowledge(self, product_id: str, token: str, *, how: str) -> None:
        """``how`` is ``consume`` (purchases.products.consume), ``acknowledge``
        (purchases.products.acknowledge) or ``subscription``
        (purchases.subscriptions.acknowledge)."""
        purchases, app = self._service.purchases(), self.package_name
        if how == "subscription":
            call = purchases.subscriptions().acknowledge(
                packageName=app, subscriptionId=product_id, token=token, body={}
            )
        elif how == "consume":
            call = purchases.products().consume(packageName=app, productId=product_id, token=token)
        else:
            call = purchases.products().acknowledge(
                packageName=app, productId=product_id, token=token, body={}
            )
        self._run(call)

    def subscription(self, token: str) -> dict[str, Any]:
        """purchases.subscriptionsv2.get: a subscription by its purchase token."""
        subs = self._service.purchases().subscriptionsv2()
        return self._run(subs.get(packageName=self.package_name, token=token))

    def order(self, order_id: str) -> dict[str, Any]:
        """orders.get: one order, with its state (``REFUNDED`` once refunded)."""
        return self._run(
            self._service.orders().get(packageName=self.package_name, orderId=order_id)
        )

    def orders(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        """orders.batchget (1,000 ids a call): the orders Google knows, by id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(order_ids), 1000):
            chunk = order_ids[start : start + 1000]
            answer = self._run(
                self._service.orders().batchget(packageName=self.package_name, orderIds=chunk)
            )
            for order in answer.get("orders") or []:
                if isinstance(order, dict) and order.get("orderId"):
                    found[str(order["orderId"])] = order
        return found

    def refund(self, order_id: str, *, revoke: bool) -> None:
        """orders.refund: refund the whole order (and revoke the item if ``revoke``)."""
        orders = self._service.orders()
        self._run(orders.refund(packageName=self.package_name, orderId=order_id, revoke=revoke))

    def review_refund(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """orders.reviewrefund: answer a pending refund review (a chargeback)."""
        orders = self._service.orders()
        return self._run(
            orders.reviewrefund(packageName=self.package_name, orderId=order_id, body=body)
        )

    def voided_purchases(
        self, *, start_ms: int, page_token: str | None = None, max_results: int = 1000
    ) -> dict[str, Any]:
        """purchases.voidedpurchases.list: one page of purchases voided since ``start_ms``."""
        voided = self._service.purchases().voidedpurchases()
        args: dict[str, Any] = {
            "packageName": self.package_name,
            "startTime": str(start_ms),
            "type": 1,  # one-time products and subscriptions
            "maxResults": max_results,
            "includeQuantityBasedPartialRefund": True,  # partial ones too (voidedQuantity)
        }
        if page_token:
            args["token"] = page_token
        return self._run(voided.list(**args))


def _reason(exc: Any) -> str:
    try:
        return str(exc.reason or exc.error_details or "error")
    except AttributeError:
        return "error"
