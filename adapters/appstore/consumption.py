"""What Apple's ``ConsumptionRequest`` accepts (App Store Server API 1.19, Send Consumption
Information): ``consumptionPercentage`` in milliunits, 0-100000, and none for a purchase
that was not delivered; ``customerConsented`` only ``true``."""

from __future__ import annotations

from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.RefundPreference import RefundPreference

from iap_flow import Order, RefundRequest


def consumption_problem(consumed: object, delivery: DeliveryStatus) -> str | None:
    """Why Apple would refuse this consumption share, if it would."""
    if consumed is None:
        return None
    if isinstance(consumed, bool) or not isinstance(consumed, int):
        return f"consumption share {consumed!r} is not an integer of milliunits"
    if not 0 <= consumed <= 100_000:
        return f"consumption share {consumed} is outside 0-100000 milliunits"
    if consumed and delivery is not DeliveryStatus.DELIVERED:
        return "an undelivered purchase has no consumption share"
    return None


def refund_preference(approve: bool, refund: RefundRequest, order: Order) -> RefundPreference:
    """Staff's decision as Apple's refund preference: part of what was paid is prorated."""
    if not approve:
        return RefundPreference.DECLINE
    whole = refund.amount.amount >= order.refundable.amount
    return RefundPreference.GRANT_FULL if whole else RefundPreference.GRANT_PRORATED
