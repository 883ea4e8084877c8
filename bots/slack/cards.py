"""Where each refund's and ticket's cards are in Slack, so every copy can be kept in step.

A card is a message the bot posted about a record (the review request, an escalation copy
with buttons, a ticket card): channel, ts, what kind of card, and the record's state when it
was last drawn. The bot keeps this in a table of its own (``iap_flow_slack_cards``) in the
same database as the flow, over its own connection, so every bot instance and every restart
sees the same cards; on an in-memory store it is kept in memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

TABLE = "iap_flow_slack_cards"


@attrs.frozen
class Card:
    record_id: str
    channel: str
    ts: str
    kind: str
    """``refund``, ``refund_escalated`` or ``ticket``: which card to draw."""
    state: str
    """The record's status when the card was last drawn."""


class Cards(Protocol):
    def add(self, card: Card) -> None: ...
    def of(self, record_id: str) -> list[Card]: ...
    def set_state(self, record_id: str, state: str) -> None: ...
    def live(self, done: frozenset[str], limit: int) -> list[Card]:
        """Cards whose record may still change, newest first."""
        ...

    def close(self) -> None: ...


class MemoryCards:
    """Cards of a bot on an in-memory store (tests, a single process)."""

    def __init__(self) -> None:
        self._cards: dict[tuple[str, str], Card] = {}
        self._lock = threading.Lock()

    def add(self, card: Card) -> None:
        with self._lock:
            self._cards[(card.channel, card.ts)] = card

    def of(self, record_id: str) -> list[Card]:
        with self._lock:
            return [c for c in self._cards.values() if c.record_id == record_id]

    def set_state(self, record_id: str, state: str) -> None:
        with self._lock:
            for key, card in self._cards.items():
                if card.record_id == record_id:
                    self._cards[key] = attrs.evolve(card, state=state)

    def live(self, done: frozenset[str], limit: int) -> list[Card]:
        with self._lock:
            live = [c for c in self._cards.values() if c.state not in done]
            return sorted(live, key=lambda c: c.ts, reverse=True)[:limit]

    def close(self) -> None:
        pass


class SqlCards:
    """Cards in the flow's database (SQLite file or PostgreSQL schema), own connection."""

    def __init__(self, connect: Any, mark: str, table: str) -> None:
        self._connect = connect
        self._mark = mark
        self._table = table
        self._lock = threading.Lock()
        self._conn: Any = None
        self._run(
            f"CREATE TABLE IF NOT EXISTS {table} (record_id TEXT NOT NULL, channel TEXT NOT NULL,"
            " ts TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,"
            " PRIMARY KEY (channel, ts))",
        )
        self._run(f"CREATE INDEX IF NOT EXISTS {TABLE}_record ON {table} (record_id)")

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            cur = self._conn.cursor()
            try:
                yield cur
                self._conn.commit()
            except BaseException:
                conn, self._conn = self._conn, None  # a fresh connection next time
                with contextlib.suppress(Exception):
                    conn.close()
                raise
            finally:
                with contextlib.suppress(Exception):
                    cur.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            cur.execute(sql.replace("?", self._mark), params)
            return list(cur.fetchall()) if cur.description else []

    def add(self, card: Card) -> None:
        self._run(
            f"INSERT INTO {self._table} (record_id, channel, ts, kind, state) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, ts) DO UPDATE SET state = excluded.state",
            (card.record_id, card.channel, card.ts, card.kind, card.state),
        )

    def of(self, record_id: str) -> list[Card]:
        rows = self._run(
            f"SELECT record_id, channel, ts, kind, state FROM {self._table} WHERE record_id = ?"
            " ORDER BY ts",
            (record_id,),
        )
        return [Card(*row) for row in rows]

    def set_state(self, record_id: str, state: str) -> None:
        self._run(f"UPDATE {self._table} SET state = ? WHERE record_id = ?", (state, record_id))

    def live(self, done: frozenset[str], limit: int) -> list[Card]:
        marks = ", ".join("?" for _ in done) or "''"
        rows = self._run(
            f"SELECT record_id, channel, ts, kind, state FROM {self._table}"
            f" WHERE state NOT IN ({marks}) ORDER BY ts DESC LIMIT ?",
            (*sorted(done), limit),
        )
        return [Card(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_cards(url: str) -> Cards:
    """The card table next to the flow's store at ``url``."""
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        rest = url.split("://", 1)[1]
        if rest in ("", "/", "/:memory:"):
            return MemoryCards()
        path = rest[1:]
        return SqlCards(
            lambda: sqlite3.connect(path, timeout=30, check_same_thread=False), "?", TABLE
        )
    if scheme in ("postgres", "postgresql"):
        import psycopg

        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        schema = params.pop("schema", "iap_flow")
        params.pop("pool_size", None)
        conninfo = urlunsplit(
            ("postgresql", parts.netloc, parts.path, urlencode(params, quote_via=quote), "")
        )
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"bad schema name {schema!r}")
        return SqlCards(lambda: psycopg.connect(conninfo), "%s", f"{schema}.{TABLE}")
    return MemoryCards()
