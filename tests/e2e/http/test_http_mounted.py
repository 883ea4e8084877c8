"""The store webhooks and the Slack bot served by ``iap-flow serve`` itself, one OS process
on one configuration: a signed App Store notification, an OIDC-authenticated Google Play push
(both refused when forged), a Google Play purchase token a buyer attaches to their order (and
may not attach to anyone else's), the buyer's entitlements, and a refund approved by a signed
Slack interactivity POST, paid out through Google Play."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "slack"))

from apple_fakes import tamper
from deployment import PUSH_TOKEN, Deployment, deployment
from http_server import Api
from play_fakes import (
    one_time,
    product_purchase,
    push,
)
from slack_bot import SECRET, buttons, texts
from slack_fakes import Driver


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("mounted")) as running:
        yield running


def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def test_a_signed_app_store_notification_pays_the_buyers_order(deployed: Deployment) -> None:
    api, apple = deployed.api, deployed.apple
    now = datetime.now(UTC)
    signed = apple.notification(
        "ONE_TIME_CHARGE", apple.transaction("gems", now, account="u_apple"), now
    )
    r = api.http.post("/webhooks/app-store", json={"signedPayload": signed})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "paid" and r.headers["x-request-id"]
    [order] = api.get("/v1/orders", api.buyer("u_apple")).json()["items"]
    assert order["platform"] == "app_store" and order["status"] == "paid"

    forged = api.http.post("/webhooks/app-store", json={"signedPayload": tamper(signed)})
    assert forged.status_code == 400, forged.text
    assert api.http.post("/webhooks/app-store", content=b"{}").status_code == 400
    assert api.http.get("/webhooks/app-store").status_code == 405
    too_big = api.http.post("/webhooks/app-store", content=b"x" * 1_000_001)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    chunked = api.http.post("/webhooks/app-store", content=iter([b"x" * 600_000] * 2))
    assert chunked.status_code == 413  # no Content-Length: the endpoint stops reading at 1 MB


def test_an_oidc_authenticated_play_push_pays_and_an_unauthenticated_one_is_refused(
    deployed: Deployment,
) -> None:
    api, play = deployed.api, deployed.play
    play.purchases["tok-push"] = product_purchase("GPA.3300-0000-0000-00001", "u_push")
    at_ms = int(datetime.now(UTC).timestamp() * 1000)
    envelope = push(one_time("tok-push", "gems", at_ms), "msg-1")
    url = f"/webhooks/google-play?token={PUSH_TOKEN}"
    no_auth = api.http.post(url, json=envelope)
    assert no_auth.status_code == 403, no_auth.text
    wrong_audience = api.http.post(
        url, json=envelope, headers={"Authorization": play.sign(aud="https://elsewhere")}
    )
    assert wrong_audience.status_code == 403
    no_token = api.http.post(
        "/webhooks/google-play", json=envelope, headers={"Authorization": play.sign()}
    )
    assert no_token.status_code == 403
    r = api.http.post(url, json=envelope, headers={"Authorization": play.sign()})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "paid"
    [order] = api.get("/v1/orders", api.buyer("u_push")).json()["items"]
    assert order["platform"] == "google_play" and order["status"] == "paid"


def _play_order(api: Api, user: str, sku: str = "gems") -> str:
    r = api.post("/v1/orders", api.buyer(user), {"sku": sku, "platform": "google_play"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_buyer_attaches_a_play_purchase_token_bound_to_them(deployed: Deployment) -> None:
    api, play = deployed.api, deployed.play
    order_id = _play_order(api, "u_play", "badge")
    play.purchases["tok-mine"] = product_purchase("GPA.3300-0000-0000-00002", "u_play")
    play.purchases["tok-theirs"] = product_purchase("GPA.3300-0000-0000-00003", "u_other")
    path = f"/v1/orders/{order_id}/purchases/google-play"

    theirs = api.post(
        path, api.buyer("u_play"), {"purchase_token": "tok-theirs", "product_id": "badge"}
    )
    assert theirs.status_code == 403 and theirs.json()["code"] == "purchase_not_owned"
    other_product = api.post(
        path, api.buyer("u_play"), {"purchase_token": "tok-mine", "product_id": "coins"}
    )
    assert other_product.status_code == 422 and other_product.json()["field"] == "product_id"
    not_yours = api.post(
        path, api.buyer("u_stranger"), {"purchase_token": "tok-mine", "product_id": "badge"}
    )
    assert not_yours.status_code == 404 and not_yours.json()["code"] == "not_found"

    paid = api.post(
        path, api.buyer("u_play"), {"purchase_token": "tok-mine", "product_id": "badge"}
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert paid.json()["platform_transaction_id"] == "GPA.3300-0000-0000-00002"

    mine = api.get("/v1/me/entitlements", api.buyer("u_play"))
    assert mine.status_code == 200, mine.text
    assert [(e["sku"], e["source_order_id"]) for e in mine.json()] == [("badge", order_id)]
    assert api.get("/v1/me/entitlements", api.buyer("u_stranger")).json() == []
    before = api.get(
        "/v1/me/entitlements", api.buyer("u_play"), params={"at": "2020-01-01T00:00:00Z"}
    )
    assert before.status_code == 200 and before.json() == []
    staff = api.get("/v1/staff/users/u_play/entitlements", api.staff("k_agent"))
    assert staff.status_code == 200 and staff.json() == mine.json()
    pm = api.get("/v1/staff/users/u_play/entitlements", api.staff("k_pm"))
    assert pm.status_code == 403 and pm.json()["code"] == "permission_denied"


def test_a_signed_slack_click_approves_a_refund_paid_out_through_google_play(
    deployed: Deployment,
) -> None:
    api, play, slack = deployed.api, deployed.play, deployed.slack
    order_id = _play_order(api, "u_refund")
    play.purchases["tok-refund"] = product_purchase("GPA.3300-0000-0000-00004", "u_refund")
    r = api.post(
        f"/v1/orders/{order_id}/purchases/google-play",
        api.buyer("u_refund"),
        {"purchase_token": "tok-refund", "product_id": "gems"},
    )
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/orders/{order_id}/refunds", api.buyer("u_refund"), {"reason": "Twice"})
    assert r.status_code == 201, r.text
    refund_id = r.json()["id"]

    card = _until(
        lambda: [m for m in slack.to("chat.postMessage") if refund_id in texts(m)],
        "the review card",
    )[0]
    assert buttons(card) == ["refund_approve", "refund_reject"]
    events = api.base + "/slack/events"
    challenge = {"type": "url_verification", "challenge": "c-42", "token": "legacy"}
    status, body = Driver(events, SECRET).post(json.dumps(challenge).encode(), "application/json")
    assert status == 200 and "c-42" in body  # Slack's check of the Request URL
    forged, _ = Driver(events, "not-the-secret").click(
        "UAGENT1", "refund_approve", refund_id, message=card
    )
    assert forged == 401
    status, _ = Driver(events, SECRET).click("UAGENT1", "refund_approve", refund_id, message=card)
    assert status == 200

    def refunded() -> bool:
        detail = api.get(f"/v1/orders/{order_id}", api.buyer("u_refund")).json()
        return bool(detail["refunds"][0]["status"] == "refunded")

    _until(refunded, "the payout")
    assert "GPA.3300-0000-0000-00004" in play.refunded
    update = _until(
        lambda: [u for u in slack.to("chat.update") if "· refunded" in texts(u)],
        "the card showing the payout",
    )[-1]
    assert "Approved by <@UAGENT1>" in texts(update)
