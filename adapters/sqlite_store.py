"""The embedded default store: SQLite through sqlite-utils, WAL, prepared SQL on the write path.

Schema and migrations use sqlite-utils; the hot path uses plain parameterised SQL on the same
connection (sqlite3 caches the prepared statements), because sqlite-utils' convenience calls
cost several times a whole write. Writers take the lock up front (``BEGIN IMMEDIATE``), so two
processes deciding the same refund queue up and the second sees the first's decision. Every
driver error leaves as a typed :class:`~iap_flow.domain.errors.StoreError` (see
:mod:`.sqlite_uow`); bookkeeping after a commit (delivery marks) never raises.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from iap_flow.adapters import sql, sqlite_subscriptions
from iap_flow.adapters.sql_outbox import RelationalOutbox
from iap_flow.adapters.sql_reads import RelationalReads
from iap_flow.adapters.sqlite_schema import MIGRATIONS, OPEN, SCHEMA_VERSION
from iap_flow.adapters.sqlite_uow import (
    DIALECT,
    DRIVER_ERRORS,
    STATEMENTS,
    SQLiteUnitOfWork,
    deadline,
    dicts,
    get_ticket,
    log,
    rollback,
    translate,
)
from iap_flow.adapters.sqlite_uow import seconds_between as seconds_between
from iap_flow.domain.errors import InvalidInput, SchemaTooNew
from iap_flow.domain.models import (
    Deadline,
    Order,
    Product,
    RefundRequest,
    Subscription,
    Ticket,
)
from iap_flow.ports import HeldOrder, SubscriptionState


class _Transaction:
    """The unit of work's context manager (a class: it runs on every command)."""

    __slots__ = ("_nested", "_store")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._nested: AbstractContextManager[Any] | None = None

    def __enter__(self) -> SQLiteUnitOfWork:
        store = self._store
        store._lock.acquire()
        try:
            if store._conn.in_transaction:
                self._nested = store.db.atomic()
                self._nested.__enter__()
            else:
                store._conn.execute("BEGIN IMMEDIATE")
        except DRIVER_ERRORS as exc:
            store._lock.release()
            raise translate(exc, store.path) from exc
        except BaseException:
            store._lock.release()
            raise
        return store._tx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        store = self._store
        conn = store._conn
        try:
            if self._nested is not None:
                try:
                    self._nested.__exit__(exc_type, exc, tb)
                except DRIVER_ERRORS as failed:
                    if exc is None:
                        raise translate(failed, store.path) from failed
                    log.warning("ROLLBACK TO SAVEPOINT on %s failed: %s", store.path, failed)
            elif exc_type is None:
                try:
                    conn.execute("COMMIT")
                except DRIVER_ERRORS as failed:
                    rollback(conn, store.path)
                    raise translate(failed, store.path) from failed
            else:
                rollback(conn, store.path)
            if isinstance(exc, DRIVER_ERRORS):
                raise translate(exc, store.path) from exc
        finally:
            store._lock.release()


class SQLiteStore(RelationalReads, RelationalOutbox):
    """The SQLite store. ``SQLiteStore.from_url("sqlite:///orders.db")``; ``sqlite://`` is memory.

    One connection per store, guarded by a lock, so one store may be shared by threads.
    Several processes may open the same file: writers queue on SQLite's lock (busy timeout).
    Opening takes the write lock only when there is something to migrate.
    """

    DIALECT = DIALECT
    STATEMENTS = STATEMENTS

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._local = threading.local()
        self._token = secrets.token_hex(6)
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise translate(exc, path) from exc
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        self._tx = SQLiteUnitOfWork(conn, self._claimer)
        try:
            if path != ":memory:" and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # SQLite's default page cache is 2 MB: too small for indexes over millions of orders.
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA mmap_size = 268435456")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, DRIVER_ERRORS):
                raise translate(exc, path) from exc
            raise

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        rest = url.split("://", 1)[1]
        if rest in ("", "/", "/:memory:"):
            return cls(":memory:")
        if not rest.startswith("/"):
            raise InvalidInput(
                f"SQLite URL needs three slashes for a file: sqlite:///orders.db, got {url!r}",
                field="url",
            )
        path = rest[1:]
        if sql.bad_text(path):
            raise InvalidInput("SQLite path contains NUL or a lone surrogate", field="url")
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise InvalidInput(
                f"folder {parent} for the SQLite database does not exist", field="url"
            )
        return cls(path)

    def _found_version(self) -> int:
        conn = self._conn
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`. An up-to-date file is only read (no
        write lock, so opening never waits on a busy writer); otherwise migrate under
        ``BEGIN IMMEDIATE``, reading the version again (another process may have done it)."""
        with self._lock:
            current = self._found_version()
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(self.path, current, SCHEMA_VERSION)
            if current == SCHEMA_VERSION:
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
                )
                current = self._found_version()
                if current > SCHEMA_VERSION:
                    raise SchemaTooNew(self.path, current, SCHEMA_VERSION)
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[version](self.db)
                    self._conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(version),),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                rollback(self._conn, self.path)
                raise

    @property
    def schema_version(self) -> int:
        with self._reading():
            return self._found_version()

    def transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT; rolls back on any error. A nested call becomes a
        savepoint through sqlite-utils' ``Database.atomic()``."""
        return _Transaction(self)

    def _claimer(self) -> str:
        """Who holds an outbox claim made here: this store and thread."""
        return f"{self._token}.{threading.get_ident()}"

    # reads
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except DRIVER_ERRORS as exc:
                raise translate(exc, self.path) from exc

    def _read(self, text: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._reading() as conn:
            return dicts(conn.execute(text, params))

    def _tuples(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        with self._reading() as conn:
            return conn.execute(text, params).fetchall()

    def get_order(self, order_id: str) -> Order | None:
        with self._reading():
            return self._tx.get_order(order_id)

    def get_refund(self, refund_id: str) -> RefundRequest | None:
        with self._reading():
            return self._tx.get_refund(refund_id)

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        with self._reading():
            return self._tx.get_ticket(ticket_id)

    def get_product(self, sku: str) -> Product | None:
        with self._reading():
            return self._tx.get_product(sku)

    def tickets(self, statuses: Sequence[str], user_id: str | None, limit: int) -> list[Ticket]:
        rows = self._read(*sql.ticket_queue(DIALECT, statuses, user_id, limit))
        with self._reading() as conn:
            return [t for r in rows if (t := get_ticket(conn, r["id"])) is not None]

    def pending_deadlines(self, subject_id: str | None) -> list[Deadline]:
        query = f"SELECT * FROM deadlines WHERE state IN {OPEN}"
        sql.check_text((subject_id,), "subject_id")
        if subject_id is None:
            rows = self._read(query + " ORDER BY due_at")
        else:
            rows = self._read(query + " AND subject_id = ? ORDER BY due_at", (subject_id,))
        return [deadline(r) for r in rows]

    # subscriptions and entitlements
    def get_subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return sqlite_subscriptions.get(self._conn, subscription_id)

    def subscriptions_for_user(self, user_id: str) -> list[Subscription]:
        with self._lock:
            return sqlite_subscriptions.for_user(self._conn, user_id)

    def entitlement_sources(
        self, user_id: str, at: datetime | None
    ) -> tuple[list[HeldOrder], list[SubscriptionState]]:
        with self._lock:
            return sqlite_subscriptions.sources(self._conn, user_id, at)

    # the outbox (shared SQL: adapters/sql_outbox.py)
    def _outbox_write(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        with self.transaction():
            return self._conn.execute(text, params).fetchall()

    def _where(self) -> str:
        return self.path

    def report_rows(self, sql_name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            text = sql.render(sql_name, seconds=DIALECT.seconds, day=DIALECT.day)
        except KeyError:
            raise InvalidInput(f"unknown report query {sql_name!r}") from None
        return self._read(text, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
