"""Every error iap-flow raises, under one root: :class:`IapFlowError`.

Errors carry the ids and states they are about, and a message a person can act on.
:class:`BuyerFacingError` marks what may be shown to a buyer as it is; the rest are faults
or mistakes for a developer or staff member. One lives elsewhere:
:class:`~iap_flow.domain.policy.ApprovalLimitExceeded` carries :class:`~iap_flow.domain.money.Money`,
and money's validation raises :class:`InvalidInput` from here, so it sits with the limits it
is about (this module imports nothing of iap-flow's).
"""

from __future__ import annotations

from typing import ClassVar


class IapFlowError(Exception):
    """Root of every error raised by iap-flow.

    ``code`` is a stable machine-readable name for the error type (the HTTP service's problem
    ``code``); every subclass sets its own and a test keeps them unique.
    """

    code: ClassVar[str] = "iap_flow_error"


class BuyerFacingError(IapFlowError):
    """An error whose message may be shown to a buyer as it is."""

    code: ClassVar[str] = "buyer_facing_error"


class InvalidInput(IapFlowError, ValueError):
    """A command got malformed input; nothing was written."""

    code: ClassVar[str] = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(IapFlowError, LookupError):
    """No such product, order, refund or ticket; nothing was written."""

    code: ClassVar[str] = "not_found"

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} does not exist")
        self.kind = kind
        self.id = id


class PermissionDenied(IapFlowError, PermissionError):
    """The actor's role may not do this; nothing was written."""

    code: ClassVar[str] = "permission_denied"

    def __init__(self, message: str, *, actor_id: str, role: str, action: str) -> None:
        super().__init__(message)
        self.actor_id = actor_id
        self.role = role
        self.action = action


class TransitionNotAllowed(IapFlowError):
    """The event is not allowed in the aggregate's current state; nothing was written."""

    code: ClassVar[str] = "transition_not_allowed"

    def __init__(self, *, kind: str, id: str, state: str, event: str) -> None:
        super().__init__(f"cannot {event} {kind} {id}: it is {state}")
        self.kind = kind
        self.id = id
        self.state = state
        self.event = event


class ConflictError(IapFlowError):
    """Another actor changed the same thing first; reload and decide again."""

    code: ClassVar[str] = "conflict"


class ConcurrentModification(ConflictError):
    """The aggregate's version moved between read and write (optimistic concurrency)."""

    code: ClassVar[str] = "concurrent_modification"

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

    code: ClassVar[str] = "already_decided"

    def __init__(self, *, refund_id: str, state: str, decided_by: str | None) -> None:
        who = decided_by or "someone else"
        super().__init__(f"refund {refund_id} was already decided by {who}: it is {state}")
        self.refund_id = refund_id
        self.state = state
        self.decided_by = decided_by


class IdempotencyKeyReused(ConflictError, ValueError):
    """The idempotency key was used before for a different command or arguments."""

    code: ClassVar[str] = "idempotency_key_reused"

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

    code: ClassVar[str] = "operation_in_progress"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with idempotency key {key!r} is still in progress; "
            "retry with the same key to get its result"
        )
        self.key = key


class RefundNotAllowed(BuyerFacingError):
    """A refund cannot be requested for this order (window passed, not paid, already open)."""

    code: ClassVar[str] = "refund_not_allowed"

    def __init__(self, message: str, *, order_id: str) -> None:
        super().__init__(message)
        self.order_id = order_id


class ProductUnavailable(BuyerFacingError):
    """The product is not on sale."""

    code: ClassVar[str] = "product_unavailable"

    def __init__(self, sku: str) -> None:
        super().__init__(f"product {sku} is not on sale")
        self.sku = sku


class PlatformUnavailable(IapFlowError):
    """The payment platform did not answer (timeout, outage); nothing changed, retry later."""

    code: ClassVar[str] = "platform_unavailable"

    def __init__(self, message: str, *, platform: str) -> None:
        super().__init__(message)
        self.platform = platform


class StoreError(IapFlowError):
    """The store is unusable (bad URL, unknown schema version, corrupt stored value)."""

    code: ClassVar[str] = "store_error"


class StoreFault(StoreError):
    """A storage fault with a known cause; ``cause`` is the driver's own error, unmasked."""

    code: ClassVar[str] = "store_fault"

    retryable = False
    """True when the same call may succeed later (a lock released, a connection back)."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class StoreBusy(StoreFault):
    """The database stayed locked by another writer longer than the busy timeout; nothing
    was written. Retry (with the same idempotency key)."""

    code: ClassVar[str] = "store_busy"

    retryable = True


class StoreUnavailable(StoreFault):
    """The database could not be reached or the connection was lost before the commit was
    sent; nothing was written. Retry (with the same idempotency key)."""

    code: ClassVar[str] = "store_unavailable"

    retryable = True


class StoreReadOnly(StoreFault):
    """The database (its file, folder or server) accepts no writes; nothing was written."""

    code: ClassVar[str] = "store_read_only"


class StoreFull(StoreFault):
    """The disk (or quota) holding the database is full; nothing was written."""

    code: ClassVar[str] = "store_full"


class StoreCorrupt(StoreFault):
    """The database file is damaged or is not an iap-flow database."""

    code: ClassVar[str] = "store_corrupt"


class SchemaTooNew(StoreFault):
    """The database was migrated by a newer iap-flow than this one; nothing was changed."""

    code: ClassVar[str] = "schema_too_new"

    def __init__(self, where: str, found: int, supported: int) -> None:
        super().__init__(
            f"{where} has schema version {found}, newer than this iap-flow ({supported}); "
            "upgrade iap-flow"
        )
        self.found = found
        self.supported = supported


class CommitOutcomeUnknown(StoreFault):
    """The connection was lost while the commit was in flight: the change may or may not
    have been committed. Retry the same command with the same idempotency key; it then
    returns the first result if the change did commit, and makes it if it did not."""

    code: ClassVar[str] = "commit_outcome_unknown"

    retryable = True


class PurchaseNotOwned(IapFlowError, PermissionError):
    """A store purchase is bound to another account than the order's buyer (Apple's
    ``appAccountToken``, Google's ``obfuscatedExternalAccountId``), or to none when binding
    is required; nothing was written."""

    code: ClassVar[str] = "purchase_not_owned"

    def __init__(
        self, message: str, *, platform: str, transaction_id: str, order_id: str, user_id: str
    ) -> None:
        super().__init__(message)
        self.platform = platform
        self.transaction_id = transaction_id
        self.order_id = order_id
        self.user_id = user_id
