"""Transactions of the PostgreSQL store: one pooled connection in pipeline mode each.

BEGIN, the writes and COMMIT are queued and sent with one Sync when the block ends, so a
change decided without a read costs one round trip. Driver errors become iap-flow errors
here: a version conflict raised in the server is the same typed conflict as on SQLite.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from iap_flow.domain.errors import (
    ConcurrentModification,
    ConflictError,
    IapFlowError,
    RefundNotAllowed,
    StoreError,
)

from .schema import CONFLICT_SQLSTATE, OUTBOX_ID_BLOCK
from .uow import Conn, PgUnitOfWork

Pool = ConnectionPool[psycopg.Connection[tuple[Any, ...]]]


def translate(exc: psycopg.Error) -> IapFlowError:
    """The iap-flow error for a driver error: conflicts typed as on SQLite, the rest StoreError."""
    if exc.sqlstate == CONFLICT_SQLSTATE:
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
        return ConflictError(f"already recorded by someone else: {exc.diag.message_detail}")
    if isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        return ConflictError(f"another transaction got in the way; try again ({exc})")
    return StoreError(f"PostgreSQL: {exc}")


def getconn(pool: Pool) -> Conn:
    """A connection from the pool, or a StoreError saying none came free in time."""
    try:
        return pool.getconn()
    except PoolTimeout as exc:
        raise StoreError(f"no PostgreSQL connection free in the pool: {exc}") from exc


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
    """One transaction on a pooled connection in pipeline mode; nested use is a savepoint.

    The writes are queued and sent with one Sync when the block ends, so a change decided
    without a read costs one round trip (psycopg's own ``transaction()`` would sync around
    it). Everything up to that Sync is one implicit transaction in the server, committed by
    the Sync itself: no BEGIN and COMMIT to send (they were two of a change's four or five
    statements, and the client's CPU is what limits workers). A nested block first turns it
    into an explicit one (BEGIN then, COMMIT at the end) so it can take a savepoint. On any
    error the transaction is rolled back (a ROLLBACK queued before the Sync) before the
    connection goes back to the pool.
    """

    __slots__ = ("_ids", "_local", "_outer", "_pipe", "_pool", "_tx", "_uow")

    def __init__(self, pool: Pool, local: threading.local, ids: OutboxIds) -> None:
        self._pool, self._local, self._ids = pool, local, ids

    def __enter__(self) -> PgUnitOfWork:
        outer: PgUnitOfWork | None = getattr(self._local, "uow", None)
        self._outer = outer is not None
        if outer is not None:
            self._uow = outer
            if not outer.explicit:  # a savepoint needs a transaction block
                outer.run("BEGIN")
                outer.explicit = True
            self._tx = outer.conn.transaction()
            self._tx.__enter__()
            return outer
        conn = getconn(self._pool)
        try:
            self._pipe = conn.pipeline()
            self._pipe.__enter__()
            self._uow = PgUnitOfWork(conn, self._ids)
        except psycopg.Error as exc:
            self._pool.putconn(conn)
            raise translate(exc) from exc
        self._local.uow = self._uow
        return self._uow

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
        try:
            # Implicit, the Sync commits; explicit, COMMIT does. On an error ROLLBACK ends
            # either (skipped if the server already aborted the pipeline: rolled back).
            end = "ROLLBACK" if exc is not None else "COMMIT" if self._uow.explicit else None
            if end is not None:
                try:
                    self._uow.run(end)
                except psycopg.Error as failed:  # psycopg may read an error while queueing
                    failure = failed if exc is None else None
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
                raise translate(failure) from failure
        finally:
            self._local.uow = None
            self._pool.putconn(conn)
