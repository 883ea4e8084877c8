"""POST /v1/purchases/app-store over real HTTP: a StoreKit signed transaction (signed by a
local chain shaped like Apple's, verified strictly by app-store-server-library) becomes the
buyer's paid order once, and only for the buyer whose account the purchase is bound to."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).parents[1] / "appstore"))

from apple_fakes import BUNDLE_ID, Apple, Chain, tamper
from appstoreserverlibrary.models.Environment import Environment
from http_server import Signer, free_port

from iap_flow import Actor, Money, open_flow
from iap_flow.adapters.appstore import AppStoreNotifications, AppStorePlatform
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.http import JwtBearer, create_app


class Running:
    def __init__(self, base: str, signer: Signer, apple: Apple) -> None:
        self.base, self.signer, self.apple = base, signer, apple

    def attach(self, user: str, signed: str) -> httpx.Response:
        return httpx.post(
            self.base + "/v1/purchases/app-store",
            json={"signed_transaction": signed},
            headers={"Authorization": f"Bearer {self.signer.token(user)}"},
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    chain = Chain.generate()
    platform = AppStorePlatform(
        bundle_id=BUNDLE_ID,
        environment=Environment.SANDBOX,
        root_certificates=[chain.root_der],
        enable_online_checks=False,  # no OCSP without internet; chain checks stay strict
    )
    db = tmp_path_factory.mktemp("appstore") / "shop.db"
    flow = open_flow(f"sqlite:///{db}", platforms=[platform], notifier=MemoryNotifier())
    flow.catalogue.add(
        Actor("pm", "product_manager"),
        sku="gems",
        title="Gems",
        description="d",
        price=Money(199, "USD"),
        kind="consumable",
    )
    signer = Signer()
    jwks = db.with_name("jwks.json")
    jwks.write_text(__import__("json").dumps(signer.jwks()))
    buyers = JwtBearer(issuer="https://id.example.test", audience="iap-flow-app", jwks_file=jwks)
    app = create_app(flow, buyers=buyers, app_store=AppStoreNotifications(flow, platform))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield Running(f"http://127.0.0.1:{port}", signer, Apple(chain))
    server.should_exit = True
    thread.join(10)
    flow.close()


def test_a_signed_transaction_becomes_the_buyers_paid_order_once(store: Running) -> None:
    signed = store.apple.transaction("gems", datetime.now(UTC), account="u_apple", price=1990)
    first = store.attach("u_apple", signed)
    assert first.status_code == 200, first.text
    order = first.json()
    assert order["status"] == "paid" and order["platform"] == "app_store"
    assert order["user_id"] == "u_apple" and order["amount"] == {"amount": 199, "currency": "USD"}
    again = store.attach("u_apple", signed)
    assert again.status_code == 200 and again.json()["id"] == order["id"]


def test_another_accounts_purchase_is_not_found(store: Running) -> None:
    signed = store.apple.transaction("gems", datetime.now(UTC), account="u_owner")
    r = store.attach("u_thief", signed)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_a_tampered_transaction_is_refused(store: Running) -> None:
    signed = store.apple.transaction("gems", datetime.now(UTC), account="u_apple2")
    r = store.attach("u_apple2", tamper(signed, price=1))
    assert r.status_code == 422 and r.json()["code"] == "notification_rejected"
    assert store.attach("u_apple2", "not.a.jws").status_code == 422
