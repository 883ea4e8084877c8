"""Every payment platform call traced and counted: an OpenTelemetry span around it (a no-op
without the ``otel`` extra) and Prometheus counters of calls, failures and failed payouts
(no-ops without the ``metrics`` extra). :meth:`Context.platform` hands these out."""

from __future__ import annotations

from collections.abc import Callable

from iap_flow import observability
from iap_flow.domain.models import Order, Platform, RefundRequest
from iap_flow.ports import PaymentPlatform, PaymentResult


class InstrumentedPlatform:
    """A :class:`~iap_flow.ports.PaymentPlatform` that traces and counts ``inner``'s calls."""

    def __init__(self, inner: PaymentPlatform) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        # What else the adapter offers (acknowledging deliveries, its hooks) stays visible:
        # ``isinstance(wrapper, Acknowledges)`` answers as it would for the adapter itself.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def platform(self) -> Platform:
        return self.inner.platform

    @property
    def decides_refunds(self) -> bool:
        return self.inner.decides_refunds

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        return self._call(
            "charge", order.id, lambda: self.inner.charge(order, token, idempotency_key)
        )

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        return self._call(
            "refund", refund.id, lambda: self.inner.refund(refund, order, idempotency_key)
        )

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        return self._call(
            "answer_refund_review",
            refund.id,
            lambda: self.inner.answer_refund_review(refund, order, idempotency_key),
        )

    def _call(self, call: str, subject: str, run: Callable[[], PaymentResult]) -> PaymentResult:
        platform = self.inner.platform.value
        with observability.span(
            f"iap_flow.platform.{call}", platform=platform, subject_id=subject
        ) as span:
            try:
                result = run()
            except Exception as exc:
                observability.platform_call(platform, call, "error", type(exc).__name__)
                raise
            outcome = "ok" if result.success else "declined"
            if span is not None and hasattr(span, "set_attribute"):
                span.set_attribute("iap_flow.outcome", outcome)
            observability.platform_call(platform, call, outcome, result.error)
            return result
