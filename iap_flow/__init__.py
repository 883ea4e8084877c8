"""iap-flow: order management for mobile in-app purchases, embeddable.

>>> import iap_flow
>>> iap_flow.Money(499, "USD")
Money(amount=499, currency='USD')
"""

from importlib.metadata import PackageNotFoundError, version

from iap_flow.config import Config, ConfigError, load_config, open_flow_from_config
from iap_flow.domain.calendar import BusinessCalendar
from iap_flow.domain.clock import ManualClock, SystemClock
from iap_flow.domain.errors import (
    AlreadyDecided,
    BuyerFacingError,
    ConcurrentModification,
    ConflictError,
    IapFlowError,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PlatformUnavailable,
    ProductUnavailable,
    PurchaseNotOwned,
    RefundNotAllowed,
    StoreError,
    TransitionNotAllowed,
)
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Deadline,
    DeadlineKind,
    Entitlement,
    Notification,
    Order,
    OrderStatus,
    OutboxBacklog,
    Page,
    Period,
    Platform,
    Product,
    ProductKind,
    RatingReason,
    RefundRequest,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
)
from iap_flow.domain.money import Money
from iap_flow.domain.policy import ApprovalLimitExceeded, Policy, ReviewAnswerPolicy
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.flow import Flow, open_flow
from iap_flow.ports import (
    Acknowledges,
    Clock,
    Consent,
    Notifier,
    PaymentKind,
    PaymentPlatform,
    PaymentResult,
    Store,
)
from iap_flow.report import Report
from iap_flow.services.sweep import SweepResult

try:
    __version__ = version("iap-flow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "SYSTEM",
    "Acknowledges",
    "Actor",
    "AlreadyDecided",
    "ApprovalLimitExceeded",
    "Audience",
    "AuditEvent",
    "BusinessCalendar",
    "BuyerFacingError",
    "Clock",
    "ConcurrentModification",
    "Config",
    "ConfigError",
    "ConflictError",
    "Consent",
    "Deadline",
    "DeadlineKind",
    "Entitlement",
    "Flow",
    "IapFlowError",
    "IdempotencyKeyReused",
    "InvalidInput",
    "ManualClock",
    "Money",
    "NotFound",
    "Notification",
    "Notifier",
    "Order",
    "OrderStatus",
    "OutboxBacklog",
    "Page",
    "PaymentKind",
    "PaymentPlatform",
    "PaymentResult",
    "Period",
    "PermissionDenied",
    "Platform",
    "PlatformUnavailable",
    "Policy",
    "Product",
    "ProductKind",
    "ProductUnavailable",
    "PurchaseNotOwned",
    "RatingReason",
    "RefundNotAllowed",
    "RefundRequest",
    "RefundStatus",
    "Report",
    "ReviewAnswerPolicy",
    "Role",
    "Store",
    "StoreError",
    "Subscription",
    "SubscriptionStatus",
    "SweepResult",
    "SystemClock",
    "Ticket",
    "TicketMessage",
    "TicketPriority",
    "TicketStatus",
    "TransitionNotAllowed",
    "__version__",
    "load_config",
    "open_flow",
    "open_flow_from_config",
]
