"""Signed webhooks from the outbox to a receiver on loopback, over real HTTP."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_receiver import Receiver, receiving

from iap_flow import Actor, Flow, Money, Role, open_flow
from iap_flow.adapters.relays.webhook import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeadLetters,
    Secret,
    WebhookRelay,
    main,
    sign,
    verify,
)
from iap_flow.domain.errors import InvalidInput

PM = Actor("pm_1", Role.PRODUCT_MANAGER)


class Waits:
    """Records the backoff the relay asks for instead of sleeping it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(["whsec_current"]) as r:
        yield r


def relay_for(receiver: Receiver, tmp_path: Path, **kw: object) -> tuple[WebhookRelay, Waits]:
    waits = Waits()
    relay = WebhookRelay(
        receiver.url,
        kw.pop("secrets", ["whsec_current"]),  # type: ignore[arg-type]
        DeadLetters(tmp_path / "dead.db"),
        sleep=waits,
        rng=random.Random(7),
        **kw,  # type: ignore[arg-type]
    )
    return relay, waits


def shop(relay: WebhookRelay, tmp_path: Path) -> Flow:
    flow = open_flow(f"sqlite:///{tmp_path / 'shop.db'}", notifier=relay, deliver_inline=False)
    flow.catalogue.add(
        PM, sku="gems", title="Gems", description="d", price=Money(499, "USD"), kind="consumable"
    )
    return flow


def paid(flow: Flow, user: str) -> str:
    buyer = Actor.buyer(user)
    order = flow.orders.place(buyer, "gems")
    flow.orders.pay(buyer, order.id, token="tok_approve")
    return order.id


def test_outbox_notifications_arrive_signed_with_their_outbox_id(
    receiver: Receiver, tmp_path: Path
) -> None:
    relay, _ = relay_for(receiver, tmp_path)
    flow = shop(relay, tmp_path)
    order_id = paid(flow, "u_1")
    assert flow.deliver_notifications() >= 1
    (message,) = [m for m in receiver.processed.values() if m["topic"] == "order.paid"]
    assert message["subject"] == order_id and message["payload"]["amount"] == 499
    assert receiver.seen == list(receiver.processed)  # each once, nothing refused
    assert receiver.refused == 0 and relay.dead_letters.list() == []


def test_retries_with_backoff_and_jitter_then_delivers(receiver: Receiver, tmp_path: Path) -> None:
    relay, waits = relay_for(receiver, tmp_path, max_attempts=5, backoff=0.1, max_backoff=0.25)
    flow = shop(relay, tmp_path)
    paid(flow, "u_2")
    receiver.fail_next = 3
    flow.deliver_notifications()
    assert len(waits.waits) == 3
    ceilings = [0.1, 0.2, 0.25]  # doubling, capped
    assert all(0 <= w <= c for w, c in zip(waits.waits, ceilings, strict=True))
    assert len(set(waits.waits)) == 3  # jittered, not a fixed schedule
    (outbox_id,) = receiver.processed
    assert receiver.seen == [outbox_id] * 4
    assert relay.dead_letters.list() == []


def test_lost_acknowledgement_is_retried_and_deduped_by_outbox_id(
    receiver: Receiver, tmp_path: Path
) -> None:
    relay, _ = relay_for(receiver, tmp_path)
    flow = shop(relay, tmp_path)
    paid(flow, "u_3")
    receiver.lose_ack_next = 1
    flow.deliver_notifications()
    (outbox_id,) = receiver.processed
    assert receiver.seen == [outbox_id, outbox_id]  # at least once: it came twice


def test_dead_letters_after_n_tries_hold_their_subject_and_replay_in_order(
    receiver: Receiver, tmp_path: Path
) -> None:
    relay, _ = relay_for(receiver, tmp_path, max_attempts=3)
    flow = shop(relay, tmp_path)
    buyer = Actor.buyer("u_4")
    order = flow.orders.place(buyer, "gems")
    flow.orders.pay(buyer, order.id, token="tok_approve")
    receiver.fail_next = 3
    flow.deliver_notifications()  # order.paid: 3 tries, dead
    (dead,) = relay.dead_letters.list()
    assert dead.attempts == 3 and "HTTP 503" in dead.error and dead.subject == order.id
    flow.refunds.request(buyer, order.id, reason="by mistake")
    other = paid(flow, "u_5")
    flow.deliver_notifications()
    letters = relay.dead_letters.list()
    assert [d.subject for d in letters] == [order.id] * len(letters) and len(letters) >= 2
    assert {m["subject"] for m in receiver.processed.values()} == {other}  # not held up
    assert relay.replay() == (len(letters), 0)
    about_order = [i for i, m in receiver.processed.items() if m["subject"] == order.id]
    assert about_order == sorted(about_order) == [d.id for d in letters]
    assert relay.dead_letters.list() == []


def test_a_refusing_receiver_goes_to_dead_letters_at_once(
    receiver: Receiver, tmp_path: Path
) -> None:
    relay, waits = relay_for(receiver, tmp_path, max_attempts=5)
    flow = shop(relay, tmp_path)
    paid(flow, "u_6")
    receiver.fail_next, receiver.fail_status = 1, 400
    flow.deliver_notifications()
    (dead,) = relay.dead_letters.list()
    assert dead.attempts == 1 and "HTTP 400" in dead.error and waits.waits == []


def test_unreachable_receiver_is_retried_then_dead(tmp_path: Path) -> None:
    with receiving(["s"]) as gone:
        url = gone.url
    relay = WebhookRelay(url, ["s"], DeadLetters(tmp_path / "dl.db"), max_attempts=2, sleep=Waits())
    flow = shop(relay, tmp_path)
    paid(flow, "u_7")
    flow.deliver_notifications()
    (dead,) = relay.dead_letters.list()
    assert dead.attempts == 2 and "ConnectError" in dead.error


def test_secret_rotation_with_overlap(tmp_path: Path) -> None:
    with receiving(["whsec_old"]) as old_only, receiving(["whsec_new"]) as new_only:
        for receiver in (old_only, new_only):
            relay = WebhookRelay(receiver.url, ["whsec_old"], DeadLetters(tmp_path / "r.db"))
            relay.rotate("whsec_new", overlap=60)
            home = tmp_path / receiver.secrets[0]
            home.mkdir()
            flow = shop(relay, home)
            paid(flow, "u_8")
            flow.deliver_notifications()
            assert receiver.refused == 0 and len(receiver.processed) == 1
    relay = WebhookRelay(
        "http://unused",
        [Secret("new"), Secret("old", until=time.time() - 1)],
        DeadLetters(tmp_path / "x.db"),
    )
    from iap_flow.adapters.relays.envelope import Envelope

    headers = relay.headers(Envelope(1, "t", "s", b"{}"))
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify(b"{}", lower, ["new"]) == 1
    with pytest.raises(InvalidInput, match="signature"):
        verify(b"{}", lower, ["old"])  # the overlap is over


def test_receivers_refuse_forged_tampered_and_stale_requests() -> None:
    body = b'{"id":1}'
    stamp = int(time.time())
    good = {
        ID_HEADER.lower(): "1",
        TIMESTAMP_HEADER.lower(): str(stamp),
        SIGNATURE_HEADER.lower(): "v1=" + sign("k", stamp, body),
    }
    assert verify(body, good, ["k"]) == 1
    with pytest.raises(InvalidInput):
        verify(body + b" ", good, ["k"])
    with pytest.raises(InvalidInput):
        verify(body, good, ["other"])
    with pytest.raises(InvalidInput, match="tolerance"):
        verify(body, good, ["k"], now=stamp + 3600)
    with pytest.raises(InvalidInput):
        verify(body, {**good, SIGNATURE_HEADER.lower(): ""}, ["k"])


def test_operator_lists_and_replays_from_the_command_line(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    relay, _ = relay_for(receiver, tmp_path, max_attempts=1)
    flow = shop(relay, tmp_path)
    paid(flow, "u_9")
    receiver.fail_next = 1
    flow.deliver_notifications()
    box = str(tmp_path / "dead.db")
    main(["list", box])
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["topic"] for d in listed] == ["order.paid"]
    main(["replay", box, receiver.url, "whsec_current"])
    assert json.loads(capsys.readouterr().out) == {"sent": 1, "still_dead": 0}
    assert listed[0]["id"] in receiver.processed
