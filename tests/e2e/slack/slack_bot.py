"""A running Slack bot for the tests: fake Slack on 127.0.0.1, the bot served over real HTTP,
a flow on SQLite with a manual clock, and helpers that make refunds and tickets and read what
Slack would show.

Slack users: ``UAGENT1``, ``UAGENT2`` (support agents by id), ``UAGENT3`` (an agent through the
user group ``SAGENTS``), ``ULEAD`` (support lead), ``UNOBODY`` (no role).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs
from slack_bolt import App
from slack_fakes import Driver, FakeSlack

from iap_flow import SYSTEM, Actor, Flow, ManualClock, Money, RefundRequest, Role, Ticket
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform
from iap_flow.bots.slack.app import open_bot_parts
from iap_flow.bots.slack.config import RoleMap, SlackConfig
from iap_flow.bots.slack.notifier import CardKeeper, SlackNotifier
from iap_flow.bots.slack.serve import EVENTS_PATH, http_server

SECRET = "test-signing-secret"
CHANNEL = "C0REVIEW"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PM = Actor("pm", Role.PRODUCT_MANAGER)


def config_for(slack: FakeSlack) -> SlackConfig:
    """The bot's configuration against the fake."""
    roles = RoleMap.parse(
        {
            Role.SUPPORT_AGENT: "UAGENT1, UAGENT2, SAGENTS",
            Role.SUPPORT_LEAD: "ULEAD",
            Role.DEVELOPER: "UDEV",
        }
    )
    return SlackConfig(
        bot_token="xoxb-test",
        review_channel=CHANNEL,
        roles=roles,
        signing_secret=SECRET,
        api_url=slack.url,
    )


@attrs.define
class Bot:
    """A flow, the bot serving it over HTTP, and what the tests drive and look at."""

    flow: Flow
    clock: ManualClock
    app: App
    slack: FakeSlack
    driver: Driver
    buyers: MemoryNotifier
    platform: SandboxPlatform
    keeper: CardKeeper
    notifier: SlackNotifier

    def order(self, sku: str = "gems", buyer: str = "u1") -> str:
        """A completed order of ``buyer``."""
        actor, orders = Actor.buyer(buyer), self.flow.orders
        order = orders.place(actor, sku)
        orders.pay(actor, order.id, token="tok_approve")
        orders.deliver(SYSTEM, order.id)
        return orders.complete(actor, order.id).id

    def refund(self, sku: str = "gems", buyer: str = "u1") -> tuple[RefundRequest, dict[str, Any]]:
        """A refund request in review, and its review message as the fake recorded it."""
        before = len(self.slack.to("chat.postMessage"))
        refund = self.flow.refunds.request(
            Actor.buyer(buyer), self.order(sku, buyer), reason="The gems never arrived"
        )
        return refund, self.slack.wait_for("chat.postMessage", before + 1)[-1]

    def ticket(self, buyer: str = "u1") -> tuple[Ticket, dict[str, Any]]:
        """An open feedback ticket, and its message in the review channel."""
        before = len(self.slack.to("chat.postMessage"))
        ticket = self.flow.feedback.submit(Actor.buyer(buyer), rating=2, body="Where are my gems?")
        return ticket, self.slack.wait_for("chat.postMessage", before + 1)[-1]

    def audit(self, subject_id: str) -> list[tuple[str, str, str]]:
        """(event, actor, role) of each step of a record, oldest first."""
        return [(e.event, e.actor_id, e.role) for e in self.flow.history(SYSTEM, subject_id)]

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table: equal snapshots mean nothing was written between them."""
        db = self.flow.store.db  # type: ignore[attr-defined]
        return {
            name: sorted(repr(tuple(r)) for r in db.execute(f"SELECT * FROM [{name}]").fetchall())
            for name in db.table_names()
        }


def start_bot(slack: FakeSlack, url: str = "sqlite://") -> tuple[Bot, Any]:
    """Open a flow on ``url`` and serve a bot for it; returns the bot and a stop function."""
    buyers, clock, platform = MemoryNotifier(), ManualClock(START), SandboxPlatform()
    parts = open_bot_parts(
        config_for(slack), url, fallback=buyers, clock=clock, platforms=[platform], seed=11
    )
    flow, app = parts.flow, parts.app
    if not flow.catalogue.products():
        for sku, title, cents in (("gems", "100 gems", 199), ("gems_big", "10,000 gems", 9_999)):
            price = Money(cents, "USD")
            flow.catalogue.add(
                PM, sku=sku, title=title, description="d", price=price, kind="consumable"
            )
    server = http_server(app, "127.0.0.1", 0).start()
    url_ = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    bot = Bot(
        flow,
        clock,
        app,
        slack,
        Driver(url_, SECRET, slack),
        buyers,
        platform,
        parts.keeper,
        parts.notifier,
    )

    def stop() -> None:
        server.stop()
        app.listener_runner.listener_executor.shutdown(wait=True)
        parts.keeper.cards.close()
        flow.close()

    return bot, stop


def texts(message: dict[str, Any]) -> str:
    """Everything a reader sees in a message: its text and the text of every block."""
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return message.get("text", "") + "\n" + json.dumps(blocks, ensure_ascii=False)


def buttons(message: dict[str, Any]) -> list[str]:
    """Action ids of the buttons on a message, in order."""
    return [
        e["action_id"]
        for b in message.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    ]
