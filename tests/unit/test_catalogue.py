"""The catalogue: product managers add and change products; orders keep their snapshot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import (
    IdempotencyKeyReused,
    InvalidInput,
    Money,
    Period,
    ProductKind,
    ProductUnavailable,
)


def test_add_a_product_of_each_kind(world: Any) -> None:
    products = {p.sku: p for p in world.flow.catalogue.products()}
    assert set(products) == set(world.products)
    sub = products["pro_month"]
    assert (sub.kind, sub.period, sub.price) == (
        ProductKind.SUBSCRIPTION,
        Period.MONTH,
        Money(499, "USD"),
    )
    assert products["no_ads"].kind is ProductKind.NON_CONSUMABLE
    assert products["gems"].period is None
    assert products["gems"].created_at == world.start
    assert products["gems"].active


def test_text_is_stripped_and_kept(world: Any) -> None:
    product = world.flow.catalogue.add(
        world.pm,
        sku="Gold.Pack-2",
        title="  Gold pack  ",
        description="Shiny\n gold",
        price=Money(1, "EUR"),
        kind=ProductKind.CONSUMABLE,
    )
    assert world.flow.catalogue.get("Gold.Pack-2") == product
    assert product.title == "Gold pack"


def test_changing_a_product_bumps_its_version_and_keeps_old_orders_snapshots(world: Any) -> None:
    order = world.order()
    world.advance(hours=1)
    changed = world.flow.catalogue.update(
        world.pm, "gems", title="120 gems", price=Money(249, "USD")
    )
    assert (changed.title, changed.price, changed.version) == ("120 gems", Money(249, "USD"), 2)
    assert changed.updated_at == world.start + timedelta(hours=1)
    assert changed.created_at == world.start
    kept = world.flow.orders.get(world.system, order.id)
    assert (kept.title, kept.amount) == ("100 gems", Money(199, "USD"))
    new = world.flow.orders.place(world.buyer, "gems")
    assert (new.title, new.amount) == ("120 gems", Money(249, "USD"))


def test_an_inactive_product_is_not_sold_and_not_listed_by_default(world: Any) -> None:
    world.flow.catalogue.update(world.pm, "no_ads", active=False)
    assert "no_ads" not in {p.sku for p in world.flow.catalogue.products()}
    assert "no_ads" in {p.sku for p in world.flow.catalogue.products(include_inactive=True)}
    with pytest.raises(ProductUnavailable, match="no_ads"):
        world.flow.orders.place(world.buyer, "no_ads")
    world.flow.catalogue.update(world.pm, "no_ads", active=True)
    assert world.flow.orders.place(world.buyer, "no_ads").sku == "no_ads"


def test_a_sku_is_unique(world: Any) -> None:
    before = world.snapshot()
    with pytest.raises(InvalidInput, match="already exists"):
        world.flow.catalogue.add(
            world.pm,
            sku="gems",
            title="Other",
            description="d",
            price=Money(5, "USD"),
            kind="consumable",
        )
    assert world.snapshot() == before


def test_add_and_update_are_idempotent_on_their_key(world: Any) -> None:
    args: dict[str, Any] = {
        "sku": "bundle",
        "title": "Bundle",
        "description": "d",
        "price": Money(999, "USD"),
        "kind": "non_consumable",
    }
    first = world.flow.catalogue.add(world.pm, **args, idempotency_key="add-bundle")
    before = world.snapshot()
    assert world.flow.catalogue.add(world.pm, **args, idempotency_key="add-bundle") == first
    assert world.snapshot() == before
    with pytest.raises(IdempotencyKeyReused):
        world.flow.catalogue.add(
            world.pm, **{**args, "price": Money(1, "USD")}, idempotency_key="add-bundle"
        )
    updated = world.flow.catalogue.update(world.pm, "bundle", active=False, idempotency_key="u1")
    before = world.snapshot()
    assert (
        world.flow.catalogue.update(world.pm, "bundle", active=False, idempotency_key="u1")
        == updated
    )
    assert world.snapshot() == before


def test_every_catalogue_change_leaves_one_audit_event(world: Any) -> None:
    """Who changed a price or took a product off sale, and when, is in the audit trail."""
    before = world.count("audit_events")
    world.flow.catalogue.update(world.pm, "gems", description="More gems")
    world.flow.catalogue.update(world.pm, "gems", price=Money(299, "USD"), active=False)
    assert world.count("audit_events") == before + 2
    events = [e for e in world.flow.history(world.dev, "gems") if e.event == "update"]
    assert [(e.from_state, e.to_state, e.actor_id) for e in events] == [
        ("active", "active", world.pm.id),
        ("active", "inactive", world.pm.id),
    ]
    assert events[1].data["price"]["to"] == str(Money(299, "USD"))
    assert set(events[1].data) == {"price", "active"}


def test_listing_with_a_non_boolean_flag_is_refused(world: Any) -> None:
    with pytest.raises(InvalidInput, match="include_inactive") as caught:
        world.flow.catalogue.products(include_inactive="yes")
    assert caught.value.field == "include_inactive"
