"""Shared fixtures: a seeded flow on SQLite with a manual clock, a memory notifier and the
sandbox platform, plus the actors of every role and helpers that drive records to a state.

Tests assert what a user would notice: the records' states, the audit trail, the outbox and
the sandbox platform's ledger. ``World.snapshot()`` reads every table, so "nothing was
written" is checked on the whole database, not on one counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from iap_flow import (
    SYSTEM,
    Actor,
    AuditEvent,
    Flow,
    ManualClock,
    Money,
    Order,
    Policy,
    RefundRequest,
    Role,
    Ticket,
    open_flow,
)
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.codec import audit_from

settings.register_profile(
    "iap",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("iap")

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Every test flow's clock starts here (a Monday morning, UTC)."""

# sku -> (title, price, kind, period)
PRODUCTS: dict[str, tuple[str, Money, str, str | None]] = {
    "gems": ("100 gems", Money(199, "USD"), "consumable", None),
    "gems_big": ("10,000 gems", Money(9_999, "USD"), "consumable", None),  # above agent limit
    "no_ads": ("No ads", Money(299, "USD"), "non_consumable", None),
    "pro_month": ("Pro, monthly", Money(499, "USD"), "subscription", "month"),
    "coins_jpy": ("Coins", Money(12_000, "JPY"), "consumable", None),  # above JPY agent limit
}

BUYER = Actor.buyer("u1")
OTHER_BUYER = Actor.buyer("u2")
AGENT = Actor.agent("agent_1")
LEAD = Actor.lead("lead_1")
PM = Actor("pm_1", Role.PRODUCT_MANAGER)
ANALYST = Actor("analyst_1", Role.DATA_ANALYST)
DEV = Actor("dev_1", Role.DEVELOPER)
ACTORS: dict[Role, Actor] = {
    Role.BUYER: BUYER,
    Role.PRODUCT_MANAGER: PM,
    Role.SUPPORT_AGENT: AGENT,
    Role.SUPPORT_LEAD: LEAD,
    Role.DATA_ANALYST: ANALYST,
    Role.DEVELOPER: DEV,
    Role.SYSTEM: SYSTEM,
}
"""One actor per role; the buyer is ``u1``, who owns what the helpers create."""


class World:
    """A flow and everything around it that a test looks at.

    Tests reach the actors through it (``world.buyer``, ``world.actor(Role.SUPPORT_LEAD)``)
    rather than importing this conftest.
    """

    start = START
    products = PRODUCTS
    buyer, other_buyer, agent, lead, pm, analyst, dev, system = (
        BUYER,
        OTHER_BUYER,
        AGENT,
        LEAD,
        PM,
        ANALYST,
        DEV,
        SYSTEM,
    )

    @staticmethod
    def actor(role: Role) -> Actor:
        """The test actor of ``role`` (the buyer is ``u1``)."""
        return ACTORS[role]

    def __init__(
        self,
        url: str,
        *,
        policy: Policy | None = None,
        deliver_inline: bool = True,
        seed_catalogue: bool = True,
        platform: SandboxPlatform | None = None,
        notifier: Any = None,
    ) -> None:
        self.clock = ManualClock(START)
        self.notifier = MemoryNotifier() if notifier is None else notifier
        self.platform = SandboxPlatform() if platform is None else platform
        self.flow: Flow = open_flow(
            url,
            platforms=[self.platform],
            notifier=self.notifier,
            clock=self.clock,
            policy=policy,
            seed=7,
            deliver_inline=deliver_inline,
        )
        if seed_catalogue:
            for sku, (title, price, kind, period) in PRODUCTS.items():
                self.flow.catalogue.add(
                    PM,
                    sku=sku,
                    title=title,
                    description=f"{title} for tests",
                    price=price,
                    kind=kind,
                    period=period,
                )

    # -- time -----------------------------------------------------------------------------
    def advance(self, **delta: float) -> datetime:
        """Move the flow's clock forward (``days=``, ``hours=``, ``minutes=``...)."""
        return self.clock.advance(timedelta(**delta))

    # -- records in a given state ----------------------------------------------------------
    def order(
        self,
        sku: str = "gems",
        *,
        buyer: Actor = BUYER,
        token: str = "tok_approve",
        upto: str = "paid",
    ) -> Order:
        """An order of ``buyer`` taken up to ``upto``: pending_payment, paid, awaiting_delivery,
        delivered or completed (payment with ``token``)."""
        orders = self.flow.orders
        order = orders.place(buyer, sku)
        if upto == "pending_payment":
            return order
        order = orders.pay(buyer, order.id, token=token)
        if upto == "paid":
            return order
        if upto == "awaiting_delivery":
            return orders.hold_delivery(SYSTEM, order.id)
        order = orders.deliver(SYSTEM, order.id)
        if upto == "delivered":
            return order
        assert upto == "completed", upto
        return orders.complete(buyer, order.id)

    def refund(
        self,
        sku: str = "gems",
        *,
        buyer: Actor = BUYER,
        token: str = "tok_approve",
        amount: Money | None = None,
    ) -> RefundRequest:
        """A refund request in review, on a fresh completed order of ``buyer``."""
        order = self.order(sku, buyer=buyer, token=token, upto="completed")
        return self.flow.refunds.request(
            buyer, order.id, reason="not what I expected", amount=amount
        )

    def ticket(self, *, buyer: Actor = BUYER, upto: str = "open") -> Ticket:
        """A feedback ticket of ``buyer`` taken up to open, answered, resolved or reopened."""
        fb = self.flow.feedback
        ticket = fb.submit(buyer, rating=2, body="the gems did not arrive", reason="slow_delivery")
        if upto == "open":
            return ticket
        ticket = fb.answer(AGENT, ticket.id, body="sorry, we are looking into it")
        if upto == "answered":
            return ticket
        ticket = fb.resolve(AGENT, ticket.id, note="gems granted")
        if upto == "resolved":
            return ticket
        assert upto == "reopened", upto
        return fb.reopen(buyer, ticket.id, body="still nothing")

    # -- what a test looks at --------------------------------------------------------------
    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the store's database."""
        return [tuple(r) for r in self.flow.store.db.execute(sql, params).fetchall()]  # type: ignore[attr-defined]

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table: equal snapshots mean nothing was written in between."""
        db = self.flow.store.db  # type: ignore[attr-defined]
        return {
            name: sorted(repr(tuple(r)) for r in db.execute(f"SELECT * FROM [{name}]").fetchall())
            for name in db.table_names()
        }

    def audit(self) -> list[AuditEvent]:
        """The whole audit trail, oldest first."""
        db = self.flow.store.db  # type: ignore[attr-defined]
        cursor = db.execute("SELECT * FROM audit_events ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [audit_from(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def outbox(self, *, pending: bool | None = None) -> list[dict[str, Any]]:
        """Outbox rows (all, only pending, or only delivered)."""
        where = {
            None: "",
            True: " WHERE delivered_at IS NULL",
            False: " WHERE delivered_at IS NOT NULL",
        }
        db = self.flow.store.db  # type: ignore[attr-defined]
        return list(db.query("SELECT * FROM outbox" + where[pending] + " ORDER BY id"))

    def topics(self) -> list[str]:
        """Topics the notifier received, in order."""
        return [n.topic for n in self.notifier.sent]

    def close(self) -> None:
        self.flow.close()


@pytest.fixture
def make_world() -> Iterator[Any]:
    """A factory for worlds with another URL, policy or delivery mode; closes them after."""
    made: list[World] = []

    def make(url: str = "sqlite://", **kwargs: Any) -> World:
        w = World(url, **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def world(make_world: Any) -> World:
    """A seeded flow on in-memory SQLite (``sqlite://``)."""
    w: World = make_world()
    return w


@pytest.fixture
def file_world(make_world: Any, tmp_path: Path) -> World:
    """A seeded flow on a SQLite file in ``tmp_path`` (WAL, like production)."""
    w: World = make_world(f"sqlite:///{tmp_path / 'flow.db'}")
    return w


@pytest.fixture
def flow(world: World) -> Flow:
    return world.flow


@pytest.fixture
def clock(world: World) -> ManualClock:
    return world.clock


@pytest.fixture
def notifier(world: World) -> MemoryNotifier:
    return world.notifier


@pytest.fixture
def platform(world: World) -> SandboxPlatform:
    return world.platform


@pytest.fixture
def actors() -> dict[Role, Actor]:
    return dict(ACTORS)
