"""Transactions of the PostgreSQL store: one pooled connection in pipeline mode each.

BEGIN, the writes and COMMIT are queued and sent with one Sync when the block ends, so a
change decided without a read costs one round trip. Driver errors become iap-flow errors
here: a version conflict raised in the server is the same typed conflict as on SQLite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from iap_flow.adapters.sql import MONEY_GUARDS, paid_twice
from iap_flow.domain.errors import (
    CommitOutcomeUnknown,
    ConcurrentModification,
    ConflictError,
    IapFlowError,
    InvalidInput,
    RefundNotAllowed,
    StoreBusy,
    StoreFault,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)

from .schema import CONFLICT_SQLSTATE, OUTBOX_ID_BLOCK
from .uow import Conn, PgUnitOfWork

Pool = ConnectionPool[psycopg.Connection[tuple[Any, ...]]]

_BY_CLASS: dict[str, tuple[type[StoreFault], str]] = {
    "08": (StoreUnavailable, "the connection to PostgreSQL failed"),
    "57": (StoreUnavailable, "PostgreSQL ended the session (shut down or terminated)"),
    "53": (StoreFull, "PostgreSQL ran out of a resource"),
    "55": (StoreBusy, "the rows are locked by another transaction"),
    "XX": (StoreFault, "PostgreSQL reported an internal error"),
}
_BY_STATE: dict[str, tuple[type[StoreFault], str]] = {
    "25006": (
        StoreReadOnly,
        "PostgreSQL is read-only (a standby, or default_transaction_read_only)",
    ),
    "53100": (StoreFull, "PostgreSQL's disk is full"),
    "57014": (StoreBusy, "the statement was cancelled (statement or lock timeout)"),
    "XX001": (StoreFault, "PostgreSQL found a damaged page"),
}
_REFUSED_VALUES = ("22003", "22021", "22P05", "22001", "54000")
"""Out of range, a character the encoding cannot hold, unsupported Unicode escape (NUL in
jsonb), value too long, too large: the input, not the store, is at fault."""


def lost(exc: BaseException) -> bool:
    """Did the connection go away (network, server shutdown, terminated backend)?"""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state:
        return True
    return state[:2] in ("08", "57") and state != "57014"


def translate(exc: psycopg.Error, *, committing: bool = False) -> IapFlowError:
    """The iap-flow error for a driver error: conflicts typed as on SQLite, faults as typed
    :class:`StoreError` subclasses carrying the driver's error. ``committing``: the error came
    while a COMMIT was in flight, so a lost connection leaves the outcome unknown."""
    state = exc.sqlstate or ""
    if state == CONFLICT_SQLSTATE:
        detail = json.loads(exc.diag.message_detail or "{}")
        return ConcurrentModification(
            kind=str(detail.get("kind")),
            id=str(detail.get("id")),
            expected_version=int(detail.get("expected_version", 0)),
        )
    if isinstance(exc, pgerrors.UniqueViolation):
        if exc.diag.constraint_name == "refunds_one_in_flight":
            detail = exc.diag.message_detail or ""
            order_id = detail.split("=(", 1)[-1].split(")", 1)[0] if "=(" in detail else "?"
            return RefundNotAllowed(
                f"order {order_id} already has a refund in flight; one refund at a time",
                order_id=order_id,
            )
        if exc.diag.constraint_name == "orders_platform_txn":
            # Key (platform, platform_transaction_id)=(app_store, 2000...) already exists.
            detail = exc.diag.message_detail or ""
            values = detail.split("=(", 1)[-1].split(")", 1)[0] if "=(" in detail else "?, ?"
            platform, _, txn = values.partition(", ")
            return paid_twice(platform, txn, None)
        return ConflictError(f"already recorded by someone else: {exc.diag.message_detail}")
    if isinstance(exc, pgerrors.CheckViolation) and exc.diag.constraint_name in MONEY_GUARDS:
        return RefundNotAllowed(
            f"refunds may not exceed what was paid ({exc.diag.message_primary})", order_id="?"
        )
    if isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        return ConflictError(f"another transaction got in the way; try again ({exc})")
    if state in _REFUSED_VALUES or (
        isinstance(exc, psycopg.DataError) and not state and "NUL" in str(exc)
    ):
        return InvalidInput(f"a value cannot be stored: {exc}")
    if lost(exc):
        if committing:
            return CommitOutcomeUnknown(
                f"the connection to PostgreSQL was lost during COMMIT ({exc}); the change may "
                "or may not be saved: retry with the same idempotency key",
                cause=exc,
            )
        return StoreUnavailable(
            f"the connection to PostgreSQL was lost before the commit ({exc}); nothing was "
            "written: retry",
            cause=exc,
        )
    found = _BY_STATE.get(state) or _BY_CLASS.get(state[:2])
    if found is not None:
        kind, what = found
        return kind(f"{what}: {exc}", cause=exc)
    return StoreFault(f"PostgreSQL: {exc}", cause=exc)


def getconn(pool: Pool) -> Conn:
    """A connection from the pool, or a StoreError saying none came free in time."""
    try:
        return pool.getconn()
    except PoolTimeout as exc:
        raise StoreUnavailable(
            f"no PostgreSQL connection free in the pool: {exc}", cause=exc
        ) from exc


class OutboxIds:
    """Hands out outbox ids from blocks of :data:`OUTBOX_ID_BLOCK` (one ``nextval`` each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = self._end = 0

    def next(self, conn: Conn) -> int:
        with self._lock:
            if self._next >= self._end:
                row = conn.execute("SELECT nextval('outbox_id_seq')").fetchone()
                assert row is not None
                self._next, self._end = int(row[0]), int(row[0]) + OUTBOX_ID_BLOCK
            self._next += 1
            return self._next - 1


class Transaction:
    """BEGIN ... COMMIT on a pooled connection in pipeline mode; nested use is a savepoint.

    BEGIN, the writes and COMMIT are queued and sent with one Sync when the block ends, so a
    change decided without a read costs one round trip (psycopg's own ``transaction()``
    would sync around it). On any error the transaction is rolled back before the
    connection goes back to the pool.
    """

    __slots__ = ("_claimer", "_ids", "_local", "_outer", "_pipe", "_pool", "_tx", "_uow")

    def __init__(
        self, pool: Pool, local: threading.local, ids: OutboxIds, claimer: Callable[[], str]
    ) -> None:
        self._pool, self._local, self._ids, self._claimer = pool, local, ids, claimer

    def __enter__(self) -> PgUnitOfWork:
        outer: PgUnitOfWork | None = getattr(self._local, "uow", None)
        self._outer = outer is not None
        if outer is not None:
            self._uow = outer
            self._tx = outer.conn.transaction()
            self._tx.__enter__()
            return outer
        conn = getconn(self._pool)
        try:
            self._pipe = conn.pipeline()
            self._pipe.__enter__()
            self._uow = uow = PgUnitOfWork(conn, self._ids, self._claimer)
            uow.run("BEGIN")
        except psycopg.Error as exc:
            self._pool.putconn(conn)
            raise translate(exc) from exc
        self._local.uow = uow
        return uow

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if self._outer:
            try:
                self._tx.__exit__(exc_type, exc, tb)  # RELEASE or ROLLBACK TO the savepoint
            except psycopg.Error as failed:
                if exc is None:
                    raise translate(failed) from failed
        else:
            self._finish(exc)
        if isinstance(exc, psycopg.Error):
            raise translate(exc) from exc

    def _finish(self, exc: BaseException | None) -> None:
        conn = self._uow.conn
        failure: psycopg.Error | None = None
        committing = False
        try:
            if exc is None:
                try:
                    self._uow.run("COMMIT")
                    committing = True
                except psycopg.Error as failed:  # psycopg may read an error while queueing
                    failure = failed
            try:
                # Sends what is queued and waits. After a server error the pipeline reports
                # itself aborted: that is the error already raised, not news.
                self._pipe.__exit__(None, None, None)
            except psycopg.Error as failed:
                failure = failure or failed
            try:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()
            except psycopg.Error as failed:
                failure = failure or failed
            if failure is not None and exc is None:
                raise translate(failure, committing=committing) from failure
        finally:
            self._local.uow = None
            self._pool.putconn(conn)
