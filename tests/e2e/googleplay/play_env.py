"""A flow on Google Play with the fake Google around it, and its pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httplib2  # type: ignore[import-untyped]
import pytest
from platform_env import PlatformEnv
from play_fakes import (
    AUDIENCE,
    PACKAGE,
    PUSHER,
    SUBSCRIPTION,
    FakePlay,
    one_time,
    product_purchase,
    push,
)

from iap_flow import (
    Actor,
    ManualClock,
    Money,
    Order,
    open_flow,
)
from iap_flow.adapters.googleplay import (
    GooglePlayNotifications,
    GooglePlayPlatform,
    PlayClient,
    PubSubPushAuth,
    androidpublisher,
)
from iap_flow.adapters.notifiers import MemoryNotifier

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUYER = Actor.buyer("u1")
AGENT = Actor.agent("agent_1")


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.fixture
def play() -> Iterator[FakePlay]:
    with FakePlay() as fake:
        yield fake


class Env(PlatformEnv):
    """A flow on Google Play, the fake Google around it, and what a test looks at."""

    def __init__(self, play: FakePlay, *, store: str = "sqlite://", **platform: Any) -> None:
        self.play = play
        self.clock = ManualClock(START)
        self.notifier = MemoryNotifier()
        service = androidpublisher(http=httplib2.Http(timeout=10), api_endpoint=play.url)
        self.platform = GooglePlayPlatform(
            PlayClient(service, PACKAGE), **{"clock": self.clock, **platform}
        )
        self.flow = open_flow(
            store, platforms=[self.platform], clock=self.clock, notifier=self.notifier, seed=9
        )
        pm = Actor("pm", "product_manager")
        add = self.flow.catalogue.add
        add(
            pm,
            sku="gems",
            title="Gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        add(pm, sku="pro", title="Pro", description="d", price=Money(499, "USD"), kind="subscription", period="month")  # fmt: skip
        self.auth = PubSubPushAuth(
            audience=AUDIENCE, service_account_email=PUSHER, certs_url=play.certs_url
        )
        self.notes = GooglePlayNotifications(
            self.flow, self.platform, push_auth=self.auth, subscription=SUBSCRIPTION
        )
        self._seq = 0

    def deliver(self, notification: dict[str, Any], message_id: str | None = None) -> Any:
        if message_id is None:
            self._seq += 1
            message_id = f"msg-{self._seq}"
        envelope = push(notification, message_id)
        return self.notes.ingest_push(envelope, authorization=self.play.sign())

    def bought(self, n: int = 1, account: str = "u1") -> tuple[str, str, Order]:
        """A gems purchase Google notified: (purchase token, order id, order)."""
        token, order_id = f"tok-{n}", f"GPA.3300-0000-0000-{n:05d}"
        self.play.purchases[token] = product_purchase(order_id, account)
        result = self.deliver(one_time(token, "gems", ms(self.clock.now())))
        return token, order_id, self.order(result.order_id)


@pytest.fixture
def env(play: FakePlay) -> Iterator[Env]:
    e = Env(play)
    yield e
    e.flow.close()
