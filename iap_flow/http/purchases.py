"""Store purchases the app made (an App Store signed transaction, a Google Play purchase
token) and what a buyer may use now: their entitlements, and the staff's view of anyone's."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter
from msgspec import Meta

from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.models import Entitlement, Order, Platform
from iap_flow.domain.roles import Actor
from iap_flow.http.buyer import OrderId, when
from iap_flow.http.context import IdempotencyKey, Req, Routes, Service
from iap_flow.http.schemas import NOT_SPACE, AttachPurchase, OrderOut, Token

At = Annotated[
    str | None,
    Parameter(
        max_length=64,
        schema_extra={"format": "date-time"},
        description="As the entitlements stood at this instant (default: now)",
    ),
]
UserId = Annotated[str, Parameter(min_length=1, max_length=128, pattern=NOT_SPACE)]


@attrs.frozen
class AttachPlayPurchase:
    """A purchase the app made with Play Billing for this order."""

    purchase_token: Token
    product_id: Annotated[
        str,
        Meta(min_length=1, max_length=150, pattern=NOT_SPACE),
    ]
    """The Play product id the token was bought for (it must be the order's product)."""


def purchase_routes(svc: Service, *, threads: bool) -> list[HTTPRouteHandler]:
    """Attach a store purchase (for each store configured) and read entitlements."""
    r = Routes(svc, threads, staff=False, tag="orders")
    flow = svc.flow
    app_store: Any = svc.stores.get("app_store")
    google_play: Any = svc.stores.get("google_play")

    @r.post("/v1/purchases/app-store", "not_found", "invalid_input", "notification_rejected")
    def attach_app_store(request: Req, data: JSONBody[AttachPurchase]) -> OrderOut:
        """Record an App Store purchase the app made (StoreKit's signed transaction)."""

        def attach(actor: Actor, key: str | None) -> OrderOut:
            order: Order = app_store.record_transaction(data.signed_transaction)
            if order.user_id != actor.id:  # a real purchase, but another account's
                raise NotFound("purchase", "app_store")
            return OrderOut.of(order)

        return r.run(request, attach)

    @r.post(
        "/v1/orders/{order_id:str}/purchases/google-play",
        "not_found",
        "invalid_input",
        "purchase_not_owned",
        "transition_not_allowed",
        "idempotency_key_reused",
        "concurrent_modification",
        "platform_unavailable",
    )
    def attach_google_play(
        request: Req,
        order_id: OrderId,
        data: JSONBody[AttachPlayPurchase],
        idempotency_key: IdempotencyKey,
    ) -> OrderOut:
        """Pay a Google Play order with the purchase the app made (Play Billing's purchase
        token): confirmed with Google, and refused unless it is bound to this buyer."""

        def check(actor: Actor) -> None:
            order = flow.orders.get(actor, order_id)  # whose it is comes first
            if order.platform is not Platform.GOOGLE_PLAY:
                raise InvalidInput(
                    f"order {order_id} is a {order.platform} order, not a Google Play one",
                    field="order_id",
                )
            if google_play.platform.sku_for(data.product_id) != order.sku:
                raise InvalidInput(
                    f"product {data.product_id!r} is not the order's product", field="product_id"
                )

        return r.run(
            request,
            lambda a, k: OrderOut.of(
                flow.orders.pay(a, order_id, token=data.purchase_token, idempotency_key=k)
            ),
            key=idempotency_key,
            owns=("order", order_id),
            first=check,
        )

    @r.get("/v1/me/entitlements", "invalid_input", tags=["entitlements"])
    def my_entitlements(request: Req, at: At = None) -> list[Entitlement]:
        """What I may use now (or at ``at``): my paid products and live subscriptions."""
        return r.run(request, lambda a, k: flow.entitlements.active(a, a.id, at=when(at, "at")))

    staff = Routes(svc, threads, staff=True, tag="staff")

    @staff.get("/v1/staff/users/{user_id:str}/entitlements", "permission_denied", "invalid_input")
    def user_entitlements(request: Req, user_id: UserId, at: At = None) -> list[Entitlement]:
        """What a buyer may use now (or at ``at``)."""
        return staff.run(
            request, lambda a, k: flow.entitlements.active(a, user_id, at=when(at, "at"))
        )

    return [
        *([attach_app_store] if app_store is not None else []),
        *([attach_google_play] if google_play is not None else []),
        my_entitlements,
        user_entitlements,
    ]
