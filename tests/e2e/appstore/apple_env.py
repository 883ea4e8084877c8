"""A flow on the App Store with the fake Apple around it, and its pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from apple_fakes import (
    APP_APPLE_ID,
    BUNDLE_ID,
    Apple,
    Chain,
    FakeAppStoreAPI,
    api_signing_key,
)
from appstoreserverlibrary.models.Environment import Environment
from platform_env import PlatformEnv

from iap_flow import (
    Actor,
    ManualClock,
    Money,
    Order,
    open_flow,
)
from iap_flow.adapters.appstore import (
    AppStoreNotifications,
    AppStorePlatform,
    api_client,
)
from iap_flow.adapters.notifiers import MemoryNotifier

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUYER = Actor.buyer("u1")
AGENT = Actor.agent("agent_1")
LEAD = Actor.lead("lead_1")


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.generate()


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    return api_signing_key()


@pytest.fixture
def api(chain: Chain, key_pem: bytes) -> Iterator[FakeAppStoreAPI]:
    with FakeAppStoreAPI(chain, key_pem) as fake:
        yield fake


class Env(PlatformEnv):
    """A flow on the App Store, the fake Apple around it, and what a test looks at."""

    def __init__(
        self,
        chain: Chain,
        api: FakeAppStoreAPI,
        key_pem: bytes,
        *,
        store: str = "sqlite://",
        **options: Any,
    ):
        self.apple = Apple(chain)
        self.api = api
        self.clock = ManualClock(START)
        self.notifier = MemoryNotifier()
        client = api_client(
            signing_key=key_pem,
            key_id="KEY123",
            issuer_id="issuer-1",
            bundle_id=BUNDLE_ID,
            environment=Environment.SANDBOX,
            base_url=api.url,
        )
        # No OCSP without internet (unless a test asks for it); chain checks stay strict.
        settings: dict[str, Any] = {
            "consent": lambda order: True,
            "enable_online_checks": False,
            "clock": self.clock,
            **options,
        }
        self.platform = AppStorePlatform(
            bundle_id=BUNDLE_ID,
            app_apple_id=APP_APPLE_ID,
            environment=Environment.SANDBOX,
            root_certificates=[chain.root_der],
            api=client,
            **settings,
        )
        self.flow = open_flow(
            store,
            platforms=[self.platform],
            clock=self.clock,
            notifier=self.notifier,
            seed=5,
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
        self.notes = AppStoreNotifications(self.flow, self.platform)


@pytest.fixture
def env(chain: Chain, api: FakeAppStoreAPI, key_pem: bytes) -> Iterator[Env]:
    e = Env(chain, api, key_pem)
    yield e
    e.flow.close()


def bought(env: Env, account: str = "u1") -> tuple[str, str, Order]:
    """A gems purchase Apple notified: (transaction id, signed transaction, order)."""
    tid = env.apple.next_id()
    txn = env.apple.transaction("gems", env.clock.now(), transaction_id=tid, account=account)
    result = env.notes.ingest(env.apple.notification("ONE_TIME_CHARGE", txn, env.clock.now()))
    assert result.order_id is not None
    return tid, txn, env.order(result.order_id)
