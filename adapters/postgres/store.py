"""The PostgreSQL store: psycopg 3 with a connection pool, for many app servers and workers.

``PostgresStore.from_url("postgresql://user@host/db?schema=iap_flow")``. The store creates
and migrates its schema itself; writes go through :class:`~.uow.PgUnitOfWork` (pipelined,
version-checked in the server); the sweep and the outbox take rows with
``FOR UPDATE SKIP LOCKED`` so any number of workers share them without acting twice.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from iap_flow import codec
from iap_flow.adapters import sql
from iap_flow.adapters.sql_outbox import RelationalOutbox
from iap_flow.adapters.sql_reads import RelationalReads
from iap_flow.domain.errors import InvalidInput, StoreFault, StoreUnavailable
from iap_flow.domain.models import (
    Deadline,
    Order,
    Product,
    RefundRequest,
    Subscription,
    Ticket,
)
from iap_flow.ports import HeldOrder, SubscriptionState

from . import subscriptions
from . import uow as q
from .schema import OPEN, migrate, schema_name
from .tx import OutboxIds, Transaction, getconn, translate
from .uow import DIALECT, STATEMENTS, Conn, PgUnitOfWork, day_of, seconds_between

DEFAULT_SCHEMA = "iap_flow"
_PARAM = re.compile(r"(?<![:\w]):([a-z_]\w*)")


@cache
def report_sql(sql_name: str) -> str:
    """A shared report query (:mod:`iap_flow.adapters.sql`) in PostgreSQL's dialect.

    ``:name`` parameters become psycopg's, the period bounds cast to ``timestamptz`` (they
    arrive as ISO text, or None). KeyError if the name is unknown.
    """

    def param(m: re.Match[str]) -> str:
        if m[1] in ("since", "until"):
            return f"CAST(%({m[1]})s AS timestamptz)"
        return f"%({m[1]})s"

    text = sql.render(sql_name, seconds=seconds_between, day=day_of)
    return _PARAM.sub(param, text.replace("%", "%%"))


log = logging.getLogger("iap_flow.store")


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Times and JSON come back as text: the shared codec parses them, exactly as for SQLite.
    conn.adapters.register_loader("timestamptz", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)


class PostgresStore(RelationalReads, RelationalOutbox):
    """The PostgreSQL store; safe to share between threads, processes and machines.

    ``schema`` (URL ``?schema=``) names the PostgreSQL schema holding the tables, created
    if missing; ``pool_size`` (URL ``?pool_size=``) caps the connections of this process.
    """

    DIALECT = DIALECT
    STATEMENTS = STATEMENTS

    def __init__(self, conninfo: str, *, schema: str = DEFAULT_SCHEMA, pool_size: int = 10) -> None:
        self.schema = schema_name(schema)
        self._local = threading.local()
        self._outbox_ids = OutboxIds()
        self._token = secrets.token_hex(6)
        where = f"PostgreSQL schema {schema!r}"
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                migrate(conn, self.schema, where)
        except psycopg.Error as exc:
            failed = translate(exc)
            if isinstance(failed, StoreFault):
                failed = type(failed)(f"cannot open {where}: {failed}", cause=exc)
            raise failed from exc
        # The store's settings go after any the URL gives (``?options=-c statement_timeout=5s``).
        given = str(conninfo_to_dict(conninfo).get("options") or "")
        options = f"{given} -c search_path={self.schema} -c timezone=UTC -c datestyle=ISO"
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, "options": options},
            configure=_configure,
            # A connection is tried before it is handed out: one a terminated backend or a
            # restarted server left dead is replaced, instead of failing the next command.
            check=ConnectionPool.check_connection,
            open=False,
            name=f"iap_flow.{self.schema}",
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(
                f"cannot open a connection pool to {where}: {exc}", cause=exc
            ) from exc

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """``postgresql://user:pw@host:port/db?schema=name&pool_size=10`` (libpq URL)."""
        parts = urlsplit(url)
        scheme = "postgresql" if parts.scheme.split("+", 1)[0] in ("postgres", "postgresql") else ""
        if not scheme:
            raise InvalidInput(f"not a PostgreSQL URL: {url!r}", field="url")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        schema = params.pop("schema", DEFAULT_SCHEMA)
        size = params.pop("pool_size", "10")
        if not size.isdigit():
            raise InvalidInput(f"pool_size must be a whole number, got {size!r}", field="url")
        query = urlencode(params, quote_via=quote)  # libpq reads %20 as a space, not +
        conninfo = urlunsplit((scheme, parts.netloc, parts.path, query, ""))
        return cls(conninfo, schema=schema, pool_size=int(size))

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        """A connection for a read or a one-statement write: the thread's open transaction's
        (so it sees that transaction's writes) or a pooled one in autocommit."""
        current: PgUnitOfWork | None = getattr(self._local, "uow", None)
        try:
            if current is not None:
                yield current.conn
                return
            conn = getconn(self._pool)
            try:
                yield conn
            finally:
                self._pool.putconn(conn)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def _read(self, text: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return conn.cursor(row_factory=dict_row).execute(text, params).fetchall()

    @property
    def schema_version(self) -> int:
        with self._conn() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def transaction(self) -> Transaction:
        """One transaction; rolls back on any error. A nested call becomes a savepoint."""
        return Transaction(self._pool, self._local, self._outbox_ids, self._claimer)

    def _claimer(self) -> str:
        """Who holds an outbox claim made here: this store and thread."""
        return f"{self._token}.{threading.get_ident()}"

    # reads
    def _tuples(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        with self._conn() as conn:
            return conn.execute(text, params).fetchall()

    def get_order(self, order_id: str) -> Order | None:
        sql.check_text((order_id,), "order_id")
        with self._conn() as conn:
            return q.get_order(conn, order_id)

    def get_refund(self, refund_id: str) -> RefundRequest | None:
        sql.check_text((refund_id,), "refund_id")
        with self._conn() as conn:
            return q.get_refund(conn, refund_id)

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        sql.check_text((ticket_id,), "ticket_id")
        with self._conn() as conn:
            return q.get_ticket(conn, ticket_id)

    def get_product(self, sku: str) -> Product | None:
        sql.check_text((sku,), "sku")
        with self._conn() as conn:
            return q.get_product(conn, sku)

    def tickets(self, statuses: Sequence[str], user_id: str | None, limit: int) -> list[Ticket]:
        with self._conn() as conn:
            heads = conn.cursor(row_factory=dict_row).execute(
                *sql.ticket_queue(DIALECT, statuses, user_id, limit)
            )
            tickets = heads.fetchall()
            messages = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM ticket_messages WHERE ticket_id = ANY(%s) ORDER BY id",
                ([t["id"] for t in tickets],),
            )
            by_ticket: dict[str, list[Any]] = {}
            for m in messages.fetchall():
                by_ticket.setdefault(m["ticket_id"], []).append(codec.message_from(m))
        return [codec.ticket_from(t, by_ticket.get(t["id"], [])) for t in tickets]

    def pending_deadlines(self, subject_id: str | None) -> list[Deadline]:
        query = f"{q.DEADLINE_SELECT} WHERE state IN {OPEN}"
        sql.check_text((subject_id,), "subject_id")
        with self._conn() as conn:
            if subject_id is None:
                rows = conn.execute(query + " ORDER BY due_at, id").fetchall()
            else:
                rows = conn.execute(
                    query + " AND subject_id = %s ORDER BY due_at, id", (subject_id,)
                ).fetchall()
        return [q.deadline_from(r) for r in rows]

    # subscriptions and entitlements
    def get_subscription(self, subscription_id: str) -> Subscription | None:
        with self._conn() as conn:
            return subscriptions.get(conn, subscription_id)

    def subscriptions_for_user(self, user_id: str) -> list[Subscription]:
        with self._conn() as conn:
            return subscriptions.for_user(conn, user_id)

    def entitlement_sources(
        self, user_id: str, at: datetime | None
    ) -> tuple[list[HeldOrder], list[SubscriptionState]]:
        with self._conn() as conn:
            return subscriptions.sources(conn, user_id, at)

    # the outbox (shared SQL: adapters/sql_outbox.py)
    def _outbox_write(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        with self._conn() as conn:
            cursor = conn.execute(text, params)
            return cursor.fetchall() if cursor.description is not None else []

    def _where(self) -> str:
        return f"PostgreSQL schema {self.schema!r}"

    def report_rows(self, sql_name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            text = report_sql(sql_name)
        except KeyError:
            raise InvalidInput(f"unknown report query {sql_name!r}") from None
        return self._read(text, params)

    def close(self) -> None:
        self._pool.close()
