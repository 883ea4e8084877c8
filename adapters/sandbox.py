"""The sandbox payment platform: deterministic, in-process, with a ledger of money moved.

The token chooses the outcome of a charge, never a random draw:

- ``tok_approve`` (or any other token) -> paid
- ``tok_decline`` -> declined (the order becomes payment_failed)
- ``tok_timeout`` -> no answer (:class:`~iap_flow.domain.errors.PlatformUnavailable`, nothing changes)
- ``tok_refund_fails`` -> paid, but every refund of this order is refused by the platform
- ``tok_refund_timeout`` -> paid, but refunds time out (retried by the sweep)

Both calls are idempotent on their key: a repeat returns the first result and moves no money.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from iap_flow.domain.errors import PlatformUnavailable
from iap_flow.domain.models import Order, Platform, RefundRequest, SubscriptionStatus
from iap_flow.domain.money import Money
from iap_flow.domain.roles import SYSTEM
from iap_flow.ports import PaymentKind, PaymentResult

if TYPE_CHECKING:
    from iap_flow.flow import Flow

APPROVE = "tok_approve"
DECLINE = "tok_decline"
TIMEOUT = "tok_timeout"
REFUND_FAILS = "tok_refund_fails"
REFUND_TIMEOUT = "tok_refund_timeout"


@attrs.frozen
class LedgerEntry:
    kind: PaymentKind
    order_id: str
    amount: Money
    key: str
    transaction_id: str


class SandboxIdentity:
    """What a sandbox platform says of itself: the platform it stands in for, and that staff
    decide its refunds (no platform review)."""

    _platform: Platform

    @property
    def platform(self) -> Platform:
        return self._platform

    @property
    def decides_refunds(self) -> bool:
        return False


class SandboxPlatform(SandboxIdentity):
    """A payment platform for tests, demos and local development."""

    def __init__(
        self, platform: Platform = Platform.SANDBOX, *, instance: str | None = None
    ) -> None:
        """``instance`` names this sandbox in its transaction ids; by default a random tag, so
        sandboxes in several processes on one database never hand out the same id."""
        self._platform = platform
        self._instance = instance if instance is not None else secrets.token_hex(4)
        self._lock = threading.Lock()
        self.ledger: list[LedgerEntry] = []
        self._results: dict[tuple[PaymentKind, str], PaymentResult] = {}
        self._tokens: dict[str, str] = {}
        self._seq = 0

    def _txn(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._platform.value}_{self._instance}_{self._seq:08d}"

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        with self._lock:
            done = self._results.get((PaymentKind.CHARGE, idempotency_key))
            if done is not None:
                return done
            if token == TIMEOUT:
                raise PlatformUnavailable(
                    f"{self._platform} did not answer the charge for order {order.id}",
                    platform=self._platform.value,
                )
            if token == DECLINE:
                result = PaymentResult(
                    False,
                    PaymentKind.CHARGE,
                    order.amount,
                    error="card declined",
                    raw={"token": token},
                )
            else:
                txn = self._txn("pay")
                result = PaymentResult(
                    True,
                    PaymentKind.CHARGE,
                    order.amount,
                    platform_transaction_id=txn,
                    raw={"token": token},
                )
                self.ledger.append(
                    LedgerEntry(PaymentKind.CHARGE, order.id, order.amount, idempotency_key, txn)
                )
                self._tokens[order.id] = token
            self._results[(PaymentKind.CHARGE, idempotency_key)] = result
            return result

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        with self._lock:
            done = self._results.get((PaymentKind.REFUND, idempotency_key))
            if done is not None:
                return done
            token = self._tokens.get(order.id, APPROVE)
            if token == REFUND_TIMEOUT:
                raise PlatformUnavailable(
                    f"{self._platform} did not answer the refund {refund.id}",
                    platform=self._platform.value,
                )
            if token == REFUND_FAILS:
                return PaymentResult(
                    False,
                    PaymentKind.REFUND,
                    refund.amount,
                    error="refund refused by the platform",
                    retryable=True,
                )
            txn = self._txn("rfd")
            result = PaymentResult(
                True, PaymentKind.REFUND, refund.amount, platform_transaction_id=txn
            )
            self.ledger.append(
                LedgerEntry(PaymentKind.REFUND, order.id, refund.amount, idempotency_key, txn)
            )
            self._results[(PaymentKind.REFUND, idempotency_key)] = result
            return result

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        """Accept staff's decision on a refund the platform decides; moves no money."""
        with self._lock:
            key = (PaymentKind.REVIEW_ANSWER, idempotency_key)
            done = self._results.get(key)
            if done is None:
                done = PaymentResult(
                    True,
                    PaymentKind.REVIEW_ANSWER,
                    refund.amount,
                    raw={"decision": refund.status.value},
                )
                self._results[key] = done
            return done

    def refunded(self, order_id: str) -> list[LedgerEntry]:
        """Refunds paid out for ``order_id`` (at most one, if the flow is right)."""
        return [e for e in self.ledger if e.kind is PaymentKind.REFUND and e.order_id == order_id]


class SandboxBilling:
    """The store's side of subscriptions, simulated under the flow's clock: renews each
    tracked subscription when its period ends and retries a failed renewal, with scripted
    outcomes (deterministic, like the tokens): ``track(first_order_id, [APPROVE, DECLINE,
    APPROVE])``, then ``run()`` after each move of the clock renews, fails into the grace
    period, and recovers.
    """

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self._scripts: dict[str, list[str]] = {}

    def track(self, first_order_id: str, outcomes: Sequence[str]) -> None:
        """Renew the subscription ``first_order_id`` started with these tokens, in order
        (then :data:`APPROVE` once they run out)."""
        self._scripts[first_order_id] = list(outcomes)

    def run(self) -> list[Order]:
        """Charge every tracked subscription that is due: its period ended (active), or a
        failed renewal is retried (in grace period or on hold). Returns the renewal orders."""
        flow, done = self._flow, []
        now = flow.clock.now()
        for first_order_id, script in self._scripts.items():
            sub = flow.subscriptions.for_order(SYSTEM, first_order_id)
            retry = sub.status in (SubscriptionStatus.IN_GRACE_PERIOD, SubscriptionStatus.ON_HOLD)
            due = sub.status is SubscriptionStatus.ACTIVE and sub.period_end <= now
            if not (retry or due):
                continue
            token = script.pop(0) if script else APPROVE
            key = f"sandbox-billing:{sub.id}:{sub.period_end.isoformat()}:{len(script)}"
            done.append(flow.orders.renew(SYSTEM, first_order_id, token=token, idempotency_key=key))
        return done
