"""The catalogue: products shown with price, description and kind (product managers keep it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import attrs

from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.models import AuditEvent, Period, Product, ProductKind
from iap_flow.domain.money import Money
from iap_flow.domain.roles import Actor
from iap_flow.ports import UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, key_or_none, member, text

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _sku(value: object) -> str:
    if not isinstance(value, str) or not _SKU.match(value):
        raise InvalidInput(
            f"sku must be 1-64 letters, digits, '.', '_' or '-', got {value!r}", field="sku"
        )
    return value


def _kind_period(kind: object, period: object) -> tuple[ProductKind, Period | None]:
    k = member(ProductKind, kind, "kind")
    if k is ProductKind.SUBSCRIPTION:
        try:
            return k, Period(str(period))
        except ValueError:
            raise InvalidInput(
                f"a subscription needs a period ({', '.join(Period)}), got {period!r}",
                field="period",
            ) from None
    if period is not None:
        raise InvalidInput(f"only subscriptions have a period; {k} got {period!r}", field="period")
    return k, None


class Catalogue:
    """Create, change and list products.

    >>> from iap_flow import open_flow, Actor, Money
    >>> flow = open_flow("sqlite://")
    >>> pm = Actor("pm_1", "product_manager")
    >>> flow.catalogue.add(pm, sku="gems_100", title="100 gems", description="A pouch",
    ...                    price=Money(199, "USD"), kind="consumable").price
    Money(amount=199, currency='USD')
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def add(
        self,
        actor: Actor,
        *,
        sku: str,
        title: str,
        description: str,
        price: Money,
        kind: ProductKind | str,
        period: Period | str | None = None,
        idempotency_key: str | None = None,
    ) -> Product:
        actor = self._ctx.actor(actor)
        check(actor, "product.create")
        sku = _sku(sku)
        if not isinstance(price, Money):
            raise InvalidInput(
                "price must be a Money (integer minor units + currency)", field="price"
            )
        if price.amount == 0:
            raise InvalidInput("price must be more than zero", field="price")
        k, p = _kind_period(kind, period)
        product = Product(
            sku=sku,
            title=text(title, "title", max_len=200),
            description=text(description, "description", max_len=2000),
            price=price,
            kind=k,
            period=p,
        )

        def body(tx: UnitOfWork, now: datetime) -> Product:
            if tx.get_product(sku) is not None:
                raise InvalidInput(f"product {sku} already exists; change it instead", field="sku")
            created = attrs.evolve(product, created_at=now, updated_at=now)
            tx.insert_product(created)
            data = {"title": created.title, "price": str(created.price), "kind": created.kind.value}
            _audit(tx, created, "create", None, actor, now, dict(data))
            return created

        args = {"sku": sku, "price": [price.amount, price.currency], "kind": k, "period": p}
        return self._ctx.run(actor, "product.create", args, key_or_none(idempotency_key), body)

    def update(
        self,
        actor: Actor,
        sku: str,
        *,
        title: str | None = None,
        description: str | None = None,
        price: Money | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Product:
        """Change a product; orders already placed keep the snapshot they were placed with."""
        actor = self._ctx.actor(actor)
        check(actor, "product.update")
        sku = _sku(sku)
        if title is not None:
            title = text(title, "title", max_len=200)
        if description is not None:
            description = text(description, "description", max_len=2000)
        if price is not None and (not isinstance(price, Money) or price.amount == 0):
            raise InvalidInput("price must be a Money of more than zero", field="price")
        if active is not None and not isinstance(active, bool):
            raise InvalidInput("active must be True or False", field="active")
        changes = {"title": title, "description": description, "price": price, "active": active}
        if all(v is None for v in changes.values()):
            raise InvalidInput("nothing to change: give a title, description, price or active")

        def body(tx: UnitOfWork, now: datetime) -> Product:
            current = tx.get_product(sku)
            if current is None:
                raise NotFound("product", sku)
            updated = attrs.evolve(
                current,
                title=current.title if title is None else title,
                description=current.description if description is None else description,
                price=current.price if price is None else price,
                active=current.active if active is None else active,
                version=current.version + 1,
                updated_at=now,
            )
            tx.update_product(updated, current.version)
            data = {
                name: {"from": str(getattr(current, name)), "to": str(getattr(updated, name))}
                for name in changes
                if getattr(current, name) != getattr(updated, name)
            }
            _audit(tx, updated, "update", _state(current), actor, now, dict(data))
            return updated

        args = {"sku": sku, **{k: str(v) for k, v in changes.items() if v is not None}}
        return self._ctx.run(actor, "product.update", args, key_or_none(idempotency_key), body)

    def get(self, sku: str) -> Product:
        product = self._ctx.store.get_product(_sku(sku))
        if product is None:
            raise NotFound("product", sku)
        return product

    def products(self, *, include_inactive: bool = False) -> list[Product]:
        """Products on sale (or all of them), by sku."""
        if not isinstance(include_inactive, bool):
            raise InvalidInput("include_inactive must be True or False", field="include_inactive")
        return self._ctx.store.list_products(active_only=not include_inactive)


def _state(product: Product) -> str:
    return "active" if product.active else "inactive"


def _audit(
    tx: UnitOfWork,
    product: Product,
    event: str,
    before: str | None,
    actor: Actor,
    now: datetime,
    data: Mapping[str, object],
) -> None:
    """Every catalogue change leaves an audit event (products have no machine: their state
    is on sale or not)."""
    tx.add_audit(
        AuditEvent(
            "product",
            product.sku,
            event,
            before,
            _state(product),
            actor.id,
            actor.role,
            now,
            dict(data),
        )
    )
