"""The App Store as a payment platform: verification, purchases looked up by transaction id,
and staff's refund decisions answered with Send Consumption Information.

Apple decides App Store refunds itself (``decides_refunds``): the flow never pays one out;
it records Apple's decision from the ``REFUND`` / ``REFUND_DECLINED`` notifications.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs
import requests
from appstoreserverlibrary.api_client import APIException, AppStoreServerAPIClient
from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.InAppOwnershipType import InAppOwnershipType
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import (
    ResponseBodyV2DecodedPayload,
)
from appstoreserverlibrary.signed_data_verifier import (
    VerificationException,
    VerificationStatus,
)

from iap_flow.adapters.accounts import APP_ACCOUNT_NAMESPACE, apple_token_matches
from iap_flow.adapters.appstore.amounts import minor_units
from iap_flow.adapters.appstore.consumption import consumption_problem as _consumption_problem
from iap_flow.adapters.appstore.consumption import refund_preference as _preference
from iap_flow.adapters.appstore.verify import (
    CACHE_SECONDS,
    CACHE_SIZE,
    CachingChainVerifier,
    FastSignedDataVerifier,
)
from iap_flow.adapters.webhooks import NotificationRejected, rejected
from iap_flow.domain.clock import SystemClock
from iap_flow.domain.errors import InvalidInput, PlatformUnavailable, PurchaseNotOwned
from iap_flow.domain.models import Order, OrderStatus, Platform, RefundRequest, RefundStatus
from iap_flow.domain.money import Money
from iap_flow.ports import Clock, Consent, PaymentKind, PaymentResult

SOURCE = "app_store"
REVIEW_WINDOW = timedelta(hours=12)
"""How long Apple waits for consumption information after a ``CONSUMPTION_REQUEST``."""

_DELIVERED = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
UNSIGNED_ENVIRONMENTS = (Environment.LOCAL_TESTING, Environment.XCODE)
"""Environments whose data the App Store does not sign: the library skips every check."""


def _never(order: Order) -> bool:
    return False


def _unknown(order: Order) -> int | None:
    return None


class AppStorePlatform:
    """The App Store behind the core's PaymentPlatform port.

    ``root_certificates`` are Apple's root certificates (DER), from
    https://www.apple.com/certificateauthority/; ``environment``, ``bundle_id`` and (in
    production) ``app_apple_id`` must match what Apple signs. ``api`` is an App Store Server
    API client (:func:`api_client`), needed to look purchases up and to answer refund reviews.
    ``consent(order)`` says whether the buyer agreed to share consumption data with Apple
    (without it Apple must not be answered): a :class:`~iap_flow.ports.Consent` (given, where
    your app recorded it, when; recorded in the audit trail) or a bool;
    ``consumption(order)`` gives the share consumed in milliunits (0-100000) or None
    (then ``delivered_consumption`` for a delivered purchase, else none is sent);
    ``delivery_status(order)`` the ``DeliveryStatus`` when your app knows better than the
    order's state (None: from the order). What was sent, the consent and Apple's reply are
    recorded in the refund's audit trail. An answer is
    checked before it is sent (share 0-100000, none for an undelivered purchase) and never
    sent after the refund's review deadline (Apple's window; ``clock`` tells the time).
    ``skus`` maps Apple product ids to catalogue SKUs when they
    differ. ``user_for(transaction)`` names the buyer (default: the transaction's
    ``appAccountToken``, the id your app set at purchase).

    Safe by default: every signed payload is verified against ``root_certificates`` with the
    library's strict X.509 checks (``strict_checks=False`` only for Apple's own test
    certificates), at the current time and at the payload's ``signedDate``. The
    ``LocalTesting`` and ``Xcode`` environments, whose data nobody signs, are refused unless
    ``allow_unsigned_for_testing=True``. A purchase tied to an order must carry the order's
    buyer as its ``appAccountToken`` (see :mod:`iap_flow.adapters.accounts`; with
    ``user_for`` given, ``user_for(transaction)`` must name the buyer); set
    ``require_account_token=False`` to accept transactions without one (never one that
    names someone else). ``finish_transactions=True`` has the sweep call Finish Transaction
    after delivery (when your server, not the app, finishes). Verified chains are cached (``chain_cache_size`` chains for
    ``chain_cache_seconds``), keyed by their exact bytes.
    """

    decides_refunds = True

    def __init__(
        self,
        *,
        bundle_id: str,
        root_certificates: Sequence[bytes],
        environment: Environment = Environment.PRODUCTION,
        app_apple_id: int | None = None,
        api: AppStoreServerAPIClient | None = None,
        enable_online_checks: bool = True,
        consent: Callable[[Order], bool | Consent] = _never,
        consumption: Callable[[Order], int | None] = _unknown,
        sample_content_provided: bool = False,
        skus: Mapping[str, str] | None = None,
        user_for: Callable[[JWSTransactionDecodedPayload], str | None] | None = None,
        review_window: timedelta = REVIEW_WINDOW,
        strict_checks: bool = True,
        allow_unsigned_for_testing: bool = False,
        require_account_token: bool = True,
        account_namespace: uuid.UUID = APP_ACCOUNT_NAMESPACE,
        chain_cache_size: int = CACHE_SIZE,
        chain_cache_seconds: float = CACHE_SECONDS,
        delivery_status: Callable[[Order], DeliveryStatus | None] | None = None,
        clock: Clock | None = None,
        delivered_consumption: int | None = None,
        finish_transactions: bool = False,
    ) -> None:
        if delivered_consumption is not None and _consumption_problem(
            delivered_consumption, DeliveryStatus.DELIVERED
        ):
            raise InvalidInput(
                f"delivered_consumption must be 0-100000 milliunits, got {delivered_consumption!r}",
                field="delivered_consumption",
            )
        if environment in UNSIGNED_ENVIRONMENTS and not allow_unsigned_for_testing:
            raise InvalidInput(
                f"App Store environment {environment.value} is not signed by Apple: anyone "
                "could forge its notifications. Pass allow_unsigned_for_testing=True only in "
                "tests.",
                field="environment",
            )
        roots = list(root_certificates)
        if not roots and environment not in UNSIGNED_ENVIRONMENTS:
            raise InvalidInput("App Store root_certificates are needed", field="root_certificates")
        try:
            self.verifier = FastSignedDataVerifier(
                roots, enable_online_checks, environment, bundle_id, app_apple_id
            )
        except ValueError as exc:
            raise InvalidInput(f"App Store configuration: {exc}", field="app_apple_id") from exc
        self.chains = CachingChainVerifier(
            roots,
            strict=strict_checks,
            cache_size=chain_cache_size,
            cache_seconds=chain_cache_seconds,
        )
        self.verifier._chain_verifier = self.chains
        self._require_account = require_account_token
        self._namespace = account_namespace
        self._delivery = delivery_status
        self._clock: Clock = clock or SystemClock()
        self.environment = environment
        self.review_window = review_window
        self._api = api
        self._consent = consent
        self._consumption = consumption
        self._sample = sample_content_provided
        self._delivered_consumption = delivered_consumption
        self.acknowledges_deliveries = finish_transactions
        self._skus = dict(skus or {})
        self._product_ids = {sku: pid for pid, sku in self._skus.items()}
        self._user_for = user_for
        self._answers: dict[str, PaymentResult] = {}
        self._lock = threading.Lock()

    @property
    def platform(self) -> Platform:
        return Platform.APP_STORE

    # -- verification -------------------------------------------------------------------------
    def verify_notification(self, signed_payload: str) -> ResponseBodyV2DecodedPayload:
        """Verify and decode an App Store Server Notification V2 ``signedPayload``.

        Raises NotificationRejected if it does not verify, PlatformUnavailable if it could
        not be checked now (an OCSP responder out of reach): try again later."""
        try:
            return self.verifier.verify_and_decode_notification(signed_payload)
        except VerificationException as exc:
            raise _refused("notification", exc) from exc

    def verify_transaction(self, signed_transaction: str) -> JWSTransactionDecodedPayload:
        """Verify and decode a signed transaction (from a notification, the API or a device)."""
        try:
            txn = self.verifier.verify_and_decode_signed_transaction(signed_transaction)
        except VerificationException as exc:
            raise _refused("transaction", exc) from exc
        if not txn.transactionId or not txn.productId:
            raise rejected(SOURCE, "malformed", "signed transaction has no transactionId/productId")
        return txn

    # -- what a transaction means to the flow ---------------------------------------------------
    def sku_for(self, product_id: str) -> str:
        """The catalogue SKU of an App Store product id."""
        return self._skus.get(product_id, product_id)

    def user_for(self, txn: JWSTransactionDecodedPayload) -> str:
        """The buyer of a transaction: ``user_for`` if given, else the ``appAccountToken``,
        else a stable stand-in from the original transaction id."""
        user = self._user_for(txn) if self._user_for is not None else txn.appAccountToken
        return user or f"{SOURCE}:{txn.originalTransactionId or txn.transactionId}"

    def check_owner(self, txn: JWSTransactionDecodedPayload, order: Order) -> None:
        """Refuse (PurchaseNotOwned) a transaction not bound to the order's buyer."""
        if self._user_for is not None:
            owner = self._user_for(txn)
            ok = owner is not None and owner == order.user_id
        elif txn.appAccountToken:
            ok = apple_token_matches(txn.appAccountToken, order.user_id, self._namespace)
        else:
            ok = not self._require_account
        if not ok:
            why = "no appAccountToken" if not txn.appAccountToken else "another appAccountToken"
            raise PurchaseNotOwned(
                f"App Store transaction {txn.transactionId} carries {why}: it is not a "
                f"purchase of order {order.id}'s buyer",
                platform=SOURCE,
                transaction_id=str(txn.transactionId),
                order_id=order.id,
                user_id=order.user_id,
            )

    def amount_of(self, txn: JWSTransactionDecodedPayload) -> Money | None:
        """What the buyer paid, if Apple says (price and currency); else None. A
        family-shared transaction is access, not revenue: zero."""
        if txn.inAppOwnershipType is InAppOwnershipType.FAMILY_SHARED:
            return Money(0, txn.currency or "USD")  # the family organiser's purchase paid
        if txn.price is None or not txn.currency:
            return None
        return minor_units(txn.price, txn.currency)

    def look_up(self, transaction_id: str) -> JWSTransactionDecodedPayload:
        """Get Transaction Info, verified. Raises APIException (Apple answered an error),
        NotificationRejected (it did not verify), PlatformUnavailable (no answer)."""
        if self._api is None:
            raise PlatformUnavailable("no App Store API client", platform=SOURCE)
        try:
            info = self._api.get_transaction_info(transaction_id)
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"App Store API: {exc}", platform=SOURCE) from exc
        return self.verify_transaction(info.signedTransactionInfo or "")

    @property
    def can_look_up(self) -> bool:
        return self._api is not None

    @property
    def api(self) -> AppStoreServerAPIClient | None:
        """The App Store Server API client (None if none was configured)."""
        return self._api

    # -- the PaymentPlatform port ---------------------------------------------------------------
    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        """Confirm a purchase the app made with StoreKit: ``token`` is its transaction id,
        looked up with the App Store Server API and verified. Nothing is charged here."""
        if self._api is None:
            return self._failed(PaymentKind.CHARGE, order.amount, "no App Store API client")
        try:
            txn = self.look_up(token)
        except APIException as exc:
            return self._api_failed(PaymentKind.CHARGE, order.amount, exc)
        except NotificationRejected as exc:
            return self._failed(PaymentKind.CHARGE, order.amount, str(exc))
        if self.sku_for(txn.productId or "") != order.sku or txn.revocationDate is not None:
            why = f"transaction {token} is not a live purchase of {order.sku}"
            return self._failed(PaymentKind.CHARGE, order.amount, why)
        self.check_owner(txn, order)
        return PaymentResult(
            True, PaymentKind.CHARGE, order.amount, platform_transaction_id=txn.transactionId
        )

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        """Apple decides App Store refunds: a developer cannot pay one out."""
        why = "App Store refunds are decided by Apple; answer the review instead"
        return self._failed(PaymentKind.REFUND, refund.amount, why)

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        """Send Consumption Information with staff's decision as the refund preference."""
        with self._lock:
            done = self._answers.get(idempotency_key)
        if done is not None:
            return done
        result = self._answer(refund, order)
        if result.success:
            with self._lock:
                self._answers[idempotency_key] = result
        return result

    def _consent_of(self, order: Order) -> Consent:
        said = self._consent(order)
        if isinstance(said, Consent):
            return said
        return Consent(bool(said), "the consent hook (no source or time given)")

    def _answer(self, refund: RefundRequest, order: Order) -> PaymentResult:
        kind, amount = PaymentKind.REVIEW_ANSWER, refund.amount
        consent = self._consent_of(order)
        raw: dict[str, Any] = {"consent": consent.as_audit()}
        if not consent.given:
            # Apple refuses customerConsented=false (400): nothing is sent without consent
            note = "the buyer did not consent to share consumption data: Apple is not answered"
            return PaymentResult(True, kind, amount, raw={**raw, "sent": None, "note": note})
        if self._api is None:
            return self._failed(kind, amount, "no App Store API client to answer Apple with")
        if order.platform_transaction_id is None:
            return self._failed(kind, amount, f"order {order.id} has no App Store transaction")
        now, due = self._clock.now(), refund.review_due_at
        if due is not None and now > due:
            why = f"Apple's window closed at {due.isoformat()}: the answer was not sent"
            return self._failed(kind, amount, why)
        approve = refund.status is RefundStatus.APPROVED
        delivery = self._delivery(order) if self._delivery is not None else None
        delivered = order.status in _DELIVERED
        if delivery is None:
            delivery = DeliveryStatus.DELIVERED if delivered else DeliveryStatus.UNDELIVERED_OTHER
        consumed = self._consumption(order)
        if consumed is None and delivery is DeliveryStatus.DELIVERED:
            consumed = self._delivered_consumption
        problem = _consumption_problem(consumed, delivery)
        if problem is not None:
            return self._failed(kind, amount, f"not sent to Apple: {problem}")
        body = ConsumptionRequest(
            customerConsented=True,
            sampleContentProvided=self._sample,
            deliveryStatus=delivery,
            consumptionPercentage=consumed,
            refundPreference=_preference(approve, refund, order),
        )
        raw["sent"] = {
            "customerConsented": True,
            "sampleContentProvided": self._sample,
            "deliveryStatus": body.rawDeliveryStatus,
            "consumptionPercentage": consumed,
            "refundPreference": body.rawRefundPreference,
        }
        raw["transaction_id"] = order.platform_transaction_id
        try:
            self._api.send_consumption_information(order.platform_transaction_id, body)
        except APIException as exc:
            raw["reply"] = {"status": exc.http_status_code, "error_code": exc.raw_api_error}
            failed = self._api_failed(kind, amount, exc)
            return attrs.evolve(failed, raw=raw)
        except requests.RequestException as exc:  # no answer: retried inside the window
            raise PlatformUnavailable(f"App Store API: {exc}", platform=SOURCE) from exc
        raw["reply"] = {"status": 202}
        return PaymentResult(
            True, kind, amount, platform_transaction_id=order.platform_transaction_id, raw=raw
        )

    def acknowledge_delivery(self, order: Order) -> PaymentResult:
        """Finish Transaction (App Store Server API 1.20), with ``finish_transactions=True``;
        else your app calls StoreKit's ``Transaction.finish()``."""
        kind, amount, txn = PaymentKind.ACKNOWLEDGE, order.amount, order.platform_transaction_id
        if self._api is None or txn is None:
            return self._failed(kind, amount, f"order {order.id}: no API client or transaction")
        try:
            self._api.finish_transaction(txn)
        except APIException as exc:
            return self._api_failed(kind, amount, exc)
        except requests.RequestException as exc:
            return PaymentResult(False, kind, amount, error=f"App Store API: {exc}", retryable=True)
        return PaymentResult(True, kind, amount, platform_transaction_id=txn, raw={"finished": txn})

    @staticmethod
    def _failed(kind: PaymentKind, amount: Money, error: str) -> PaymentResult:
        return PaymentResult(False, kind, amount, error=error)

    @staticmethod
    def _api_failed(kind: PaymentKind, amount: Money, exc: APIException) -> PaymentResult:
        status = exc.http_status_code
        error = f"App Store API answered {status}: {exc.error_message or exc.raw_api_error}"
        return PaymentResult(
            False, kind, amount, error=error, retryable=status >= 500 or status == 429
        )


def _refused(what: str, exc: VerificationException) -> Exception:
    """A verification failure as the error to raise: retryable (an OCSP responder out of
    reach) or a refusal."""
    if exc.status == VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
        return PlatformUnavailable(
            f"App Store {what} could not be verified now ({exc}): try again later",
            platform=SOURCE,
        )
    return rejected(SOURCE, exc.status.name.lower(), f"{what} refused: {exc}")
