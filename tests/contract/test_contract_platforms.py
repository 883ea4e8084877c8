"""One contract suite for every payment platform, beside the one for stores: the sandbox, the
App Store and Google Play (each against its local fake over real HTTP on 127.0.0.1, with real
signatures) answer the same questions the same way.

- a charge repeated with the same key is one charge, with the first result;
- a refund repeated with the same key is paid at most once (also when the first answer was
  lost on the way back);
- answering a platform's refund review moves no money;
- a platform that cannot be reached raises PlatformUnavailable and moves no money.

Each platform's harness says how to look at the money it moved: the sandbox's ledger, the
refunds Google recorded, and for the App Store (where Apple takes the money and decides the
refunds) the state-changing calls Apple was sent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

import attrs
import httplib2  # type: ignore[import-untyped]
import pytest
from apple_fakes import APP_APPLE_ID, BUNDLE_ID, Apple, Chain, FakeAppStoreAPI, api_signing_key
from appstoreserverlibrary.models.Environment import Environment
from play_fakes import PACKAGE, FakePlay, product_purchase

from iap_flow import (
    Money,
    Order,
    OrderStatus,
    PaymentKind,
    PaymentPlatform,
    PlatformUnavailable,
    ProductKind,
    RefundRequest,
    RefundStatus,
)
from iap_flow.adapters.accounts import app_account_token
from iap_flow.adapters.appstore import AppStorePlatform, api_client
from iap_flow.adapters.googleplay import GooglePlayPlatform, PlayClient, androidpublisher
from iap_flow.testing import APPROVE, REFUND_TIMEOUT, TIMEOUT, SandboxPlatform

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PRICE = Money(199, "USD")


class Harness(Protocol):
    """One platform under the contract, and how a test looks at it from the outside."""

    platform: PaymentPlatform

    def bought(self, n: int) -> tuple[Order, str]:
        """An order for ``gems`` and the token of a purchase the platform knows of."""
        ...

    def money_moved(self) -> list[str]:
        """Every movement of money (or state-changing call) the platform recorded, in order."""
        ...

    def unreachable(self) -> tuple[PaymentPlatform, str]:
        """The same platform behind an address nobody answers, and a token to charge with."""
        ...

    def refund_losing_the_answer(self, refund: RefundRequest, order: Order, key: str) -> None:
        """Refund so that the platform acts but its answer never reaches the caller."""
        ...


def order(n: int, platform: PaymentPlatform) -> Order:
    return Order(
        id=f"ord_{n}",
        user_id="u1",
        sku="gems",
        title="Gems",
        kind=ProductKind.CONSUMABLE,
        amount=PRICE,
        platform=platform.platform,
        status=OrderStatus.PENDING_PAYMENT,
        created_at=AT,
        updated_at=AT,
    )


def refund_of(paid: Order, status: RefundStatus, review: str | None = None) -> RefundRequest:
    return RefundRequest(
        id=f"rfd_{paid.id}",
        order_id=paid.id,
        user_id=paid.user_id,
        amount=paid.amount,
        reason="bought by mistake",
        status=status,
        created_at=AT,
        updated_at=AT,
        platform=paid.platform,
        platform_refund_id=review,
    )


def closed_port() -> str:
    """An address on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class SandboxHarness:
    def __init__(self) -> None:
        self.platform = SandboxPlatform(instance="contract")

    def bought(self, n: int) -> tuple[Order, str]:
        return order(n, self.platform), APPROVE

    def money_moved(self) -> list[str]:
        return [f"{e.kind.value} {e.order_id} {e.amount}" for e in self.platform.ledger]

    def unreachable(self) -> tuple[PaymentPlatform, str]:
        return self.platform, TIMEOUT

    def refund_losing_the_answer(self, refund: RefundRequest, order: Order, key: str) -> None:
        self.platform.refund(refund, order, key)  # paid in-process; the caller drops the answer


class AppStoreHarness:
    def __init__(self, api: FakeAppStoreAPI, chain: Chain, key_pem: bytes) -> None:
        self.api, self.apple, self.key_pem, self.chain = api, Apple(chain), key_pem, chain
        self.platform = self._platform(api.url)

    def _platform(self, url: str) -> AppStorePlatform:
        client = api_client(
            signing_key=self.key_pem,
            key_id="KEY123",
            issuer_id="issuer-1",
            bundle_id=BUNDLE_ID,
            environment=Environment.SANDBOX,
            base_url=url,
        )
        return AppStorePlatform(
            bundle_id=BUNDLE_ID,
            app_apple_id=APP_APPLE_ID,
            environment=Environment.SANDBOX,
            root_certificates=[self.chain.root_der],
            enable_online_checks=False,
            api=client,
            consent=lambda order: True,
        )

    def bought(self, n: int) -> tuple[Order, str]:
        txn = f"20000000{n:04d}"
        # bound to the order's buyer, as the app sets it (the adapter refuses anything else)
        self.api.transactions[txn] = self.apple.transaction(
            "gems", AT, transaction_id=txn, account=app_account_token("u1")
        )
        return order(n, self.platform), txn

    def money_moved(self) -> list[str]:
        # Apple charged the buyer in the app and decides refunds itself: what the adapter can
        # change at Apple is what it sends (consumption answers), never money.
        return [f"{s.method} {s.path}" for s in self.api.seen if s.method != "GET"]

    def unreachable(self) -> tuple[PaymentPlatform, str]:
        return self._platform(closed_port()), "2000000099999"

    def refund_losing_the_answer(self, refund: RefundRequest, order: Order, key: str) -> None:
        self.platform.refund(refund, order, key)  # Apple decides: nothing is paid to lose


class PlayHarness:
    def __init__(self, play: FakePlay) -> None:
        self.play = play
        self.platform = self._platform(play.url)

    @staticmethod
    def _platform(url: str) -> GooglePlayPlatform:
        service = androidpublisher(http=httplib2.Http(timeout=5), api_endpoint=url)
        return GooglePlayPlatform(PlayClient(service, PACKAGE))

    def bought(self, n: int) -> tuple[Order, str]:
        token = f"tok-{n}"
        self.play.purchases[token] = product_purchase(f"GPA.3300-0000-0000-{n:05d}", "u1")
        return order(n, self.platform), token

    def money_moved(self) -> list[str]:
        return [f"refund {order_id}" for order_id in self.play.refunded]

    def unreachable(self) -> tuple[PaymentPlatform, str]:
        return self._platform(closed_port()), "tok-unreachable"

    def refund_losing_the_answer(self, refund: RefundRequest, order: Order, key: str) -> None:
        self.play.refund_script = ["refund_then_503"]  # Google refunds, then answers 503
        self.platform.refund(refund, order, key)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.generate()


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    return api_signing_key()


@pytest.fixture(params=["sandbox", "app_store", "google_play"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Each platform in turn, its fake (if any) served on 127.0.0.1 for the test."""
    if request.param == "sandbox":
        yield SandboxHarness()
    elif request.param == "app_store":
        chain, key_pem = request.getfixturevalue("chain"), request.getfixturevalue("key_pem")
        with FakeAppStoreAPI(chain, key_pem) as api:
            yield AppStoreHarness(api, chain, key_pem)
    else:
        with FakePlay() as play:
            yield PlayHarness(play)


def paid(h: Harness, n: int = 1) -> Order:
    """An order the platform charged (confirmed), as the flow stores it afterwards."""
    pending, token = h.bought(n)
    result = h.platform.charge(pending, token, f"charge-{n}")
    assert result.success, result.error
    return attrs.evolve(
        pending, status=OrderStatus.PAID, platform_transaction_id=result.platform_transaction_id
    )


# -- charges -----------------------------------------------------------------------------------


def test_a_charge_repeated_with_the_same_key_is_one_charge(harness: Harness) -> None:
    pending, token = harness.bought(1)
    first = harness.platform.charge(pending, token, "charge-key-1")
    moved = harness.money_moved()
    again = harness.platform.charge(pending, token, "charge-key-1")
    assert first.success and first.kind is PaymentKind.CHARGE
    assert first.amount == PRICE and first.platform_transaction_id
    assert again == first
    assert harness.money_moved() == moved
    # The sandbox takes the money itself; Apple and Google took it in the app already.
    charges = [m for m in moved if m.startswith("charge")]
    assert len(charges) == (1 if isinstance(harness, SandboxHarness) else 0)


# -- refunds -----------------------------------------------------------------------------------


def refunds(h: Harness) -> list[str]:
    return [m for m in h.money_moved() if m.startswith("refund")]


def test_a_refund_repeated_with_the_same_key_is_paid_at_most_once(harness: Harness) -> None:
    order = paid(harness)
    refund = refund_of(order, RefundStatus.APPROVED)
    first = harness.platform.refund(refund, order, "refund-key-1")
    again = harness.platform.refund(refund, order, "refund-key-1")
    assert again == first
    if harness.platform.decides_refunds:  # the App Store: Apple refunds, the adapter says so
        assert not first.success and "Apple" in (first.error or "")
        assert refunds(harness) == []
    else:
        assert first.success and first.kind is PaymentKind.REFUND and first.amount == PRICE
        assert len(refunds(harness)) == 1


def test_a_refund_whose_answer_was_lost_is_not_paid_again_on_retry(harness: Harness) -> None:
    """The platform paid, but its answer never arrived (a 503 after the refund, a dropped
    reply): the flow retries with the same key, and the buyer is still refunded once."""
    order = paid(harness)
    refund = refund_of(order, RefundStatus.APPROVED)
    harness.refund_losing_the_answer(refund, order, "refund-key-2")
    retried = harness.platform.refund(refund, order, "refund-key-2")
    if harness.platform.decides_refunds:
        assert not retried.success and refunds(harness) == []
    else:
        assert retried.success, retried.error
        assert len(refunds(harness)) == 1


# -- platform reviews --------------------------------------------------------------------------


@pytest.mark.parametrize("decision", [RefundStatus.APPROVED, RefundStatus.REJECTED])
def test_answering_a_platform_review_moves_no_money(
    harness: Harness, decision: RefundStatus
) -> None:
    order = paid(harness)
    review = refund_of(order, decision, review="pending-refund-token-1")
    before = [m for m in harness.money_moved() if not m.startswith("charge")]
    answer = harness.platform.answer_refund_review(review, order, "answer-key-1")
    again = harness.platform.answer_refund_review(review, order, "answer-key-1")
    assert answer.success, answer.error
    assert answer.kind is PaymentKind.REVIEW_ANSWER and again.kind is PaymentKind.REVIEW_ANSWER
    moved = [m for m in harness.money_moved() if not m.startswith(("charge", "PUT"))]
    assert moved == before  # no refund, no charge: only the answer (Apple's PUT) was sent


# -- an unreachable platform -------------------------------------------------------------------


def test_an_unreachable_platform_raises_platform_unavailable_on_charge(harness: Harness) -> None:
    platform, token = harness.unreachable()
    pending = order(7, platform)
    before = harness.money_moved()
    with pytest.raises(PlatformUnavailable) as raised:
        platform.charge(pending, token, "charge-key-7")
    assert raised.value.platform in {"sandbox", "app_store", "google_play"}
    assert harness.money_moved() == before


def reaching_operations(h: Harness) -> list[str]:
    """The calls after a charge that go to the platform (the rest are answered locally)."""
    if isinstance(h, SandboxHarness):
        return ["refund"]  # of an order paid with tok_refund_timeout; reviews are in-process
    if isinstance(h, AppStoreHarness):
        return ["answer_refund_review"]  # App Store refunds are Apple's: no call to make
    return ["refund", "answer_refund_review"]


def test_an_unreachable_platform_raises_platform_unavailable_after_the_charge(
    harness: Harness,
) -> None:
    if isinstance(harness, SandboxHarness):
        pending, _ = harness.bought(8)
        charged = harness.platform.charge(pending, REFUND_TIMEOUT, "charge-key-8")
        order = attrs.evolve(pending, platform_transaction_id=charged.platform_transaction_id)
        platform = harness.platform
    else:
        order = paid(harness, 8)
        platform, _ = harness.unreachable()
    before = harness.money_moved()
    review = refund_of(order, RefundStatus.APPROVED, review="pending-refund-token-8")
    for operation in reaching_operations(harness):
        call = getattr(platform, operation)
        with pytest.raises(PlatformUnavailable):
            call(review, order, f"{operation}-key-8")
    assert harness.money_moved() == before
