"""Every error iap-flow raises, under one root: :class:`IapFlowError`.

Errors carry the ids and states they are about, and a message a person can act on.
:class:`BuyerFacingError` marks what may be shown to a buyer as it is; the rest are faults
or mistakes for a developer or staff member. One lives elsewhere:
:class:`~iap_flow.domain.policy.ApprovalLimitExceeded` carries :class:`~iap_flow.domain.money.Money`,
and money's validation raises :class:`InvalidInput` from here, so it sits with the limits it
is about (this module imports nothing of iap-flow's).
"""

from __future__ import annotations


class IapFlowError(Exception):
    """Root of every error raised by iap-flow."""


class BuyerFacingError(IapFlowError):
    """An error whose message may be shown to a buyer as it is."""


class InvalidInput(IapFlowError, ValueError):
    """A command got malformed input; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(IapFlowError, LookupError):
    """No such product, order, refund or ticket; nothing was written."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} does not exist")
        self.kind = kind
        self.id = id


class PermissionDenied(IapFlowError, PermissionError):
    """The actor's role may not do this; nothing was written."""

    def __init__(self, message: str, *, actor_id: str, role: str, action: str) -> None:
        super().__init__(message)
        self.actor_id = actor_id
        self.role = role
        self.action = action


class TransitionNotAllowed(IapFlowError):
    """The event is not allowed in the aggregate's current state; nothing was written."""

    def __init__(self, *, kind: str, id: str, state: str, event: str) -> None:
        super().__init__(f"cannot {event} {kind} {id}: it is {state}")
        self.kind = kind
        self.id = id
        self.state = state
        self.event = event


class ConflictError(IapFlowError):
    """Another actor changed the same thing first; reload and decide again."""


class ConcurrentModification(ConflictError):
    """The aggregate's version moved between read and write (optimistic concurrency)."""

    def __init__(self, *, kind: str, id: str, expected_version: int) -> None:
        super().__init__(
            f"{kind} {id} was changed by someone else (expected version {expected_version}); "
            "reload it and try again"
        )
        self.kind = kind
        self.id = id
        self.expected_version = expected_version


class AlreadyDecided(ConflictError):
    """A refund review was already decided by someone else."""

    def __init__(self, *, refund_id: str, state: str, decided_by: str | None) -> None:
        who = decided_by or "someone else"
        super().__init__(f"refund {refund_id} was already decided by {who}: it is {state}")
        self.refund_id = refund_id
        self.state = state
        self.decided_by = decided_by


class IdempotencyKeyReused(ConflictError, ValueError):
    """The idempotency key was used before for a different command or arguments."""

    def __init__(self, key: str, first_command: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for a different request ({first_command}); "
            "use a new key for a new request"
        )
        self.key = key
        self.first_command = first_command


class OperationInProgress(ConflictError):
    """Another call with the same idempotency key is still under way; retry with the same key
    (the retry returns the first call's result once it is done)."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with idempotency key {key!r} is still in progress; "
            "retry with the same key to get its result"
        )
        self.key = key


class RefundNotAllowed(BuyerFacingError):
    """A refund cannot be requested for this order (window passed, not paid, already open)."""

    def __init__(self, message: str, *, order_id: str) -> None:
        super().__init__(message)
        self.order_id = order_id


class ProductUnavailable(BuyerFacingError):
    """The product is not on sale."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"product {sku} is not on sale")
        self.sku = sku


class PlatformUnavailable(IapFlowError):
    """The payment platform did not answer (timeout, outage); nothing changed, retry later."""

    def __init__(self, message: str, *, platform: str) -> None:
        super().__init__(message)
        self.platform = platform


class StoreError(IapFlowError):
    """The store is unusable (bad URL, unknown schema version, corrupt stored value)."""
