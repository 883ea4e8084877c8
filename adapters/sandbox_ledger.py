"""A sandbox payment platform whose ledger is a file: it survives SIGKILL and is shared by
every process that opens the same path, deduplicating by idempotency key like a real one.

For reliability tests: kill a worker at any point, start another, and the ledger still says
exactly what money moved and under which key; :meth:`FileLedgerPlatform.calls` counts every
request (a repeat that moved no money shows there, not in :meth:`moves`). Tokens choose the
outcome as in :mod:`iap_flow.adapters.sandbox`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import attrs

from iap_flow.adapters.sandbox import (
    DECLINE,
    REFUND_FAILS,
    REFUND_TIMEOUT,
    TIMEOUT,
    SandboxIdentity,
)
from iap_flow.domain.errors import PlatformUnavailable
from iap_flow.domain.models import Order, Platform, RefundRequest
from iap_flow.domain.money import Money
from iap_flow.ports import PaymentKind, PaymentResult

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " key TEXT NOT NULL, order_id TEXT NOT NULL, pid INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS results (kind TEXT NOT NULL, key TEXT NOT NULL,"
    " order_id TEXT NOT NULL, success INTEGER NOT NULL, amount INTEGER NOT NULL,"
    " currency TEXT NOT NULL, txn TEXT, error TEXT, token TEXT, PRIMARY KEY (kind, key))"
)


@attrs.frozen
class Move:
    """Money that moved: a charge or a refund, under its idempotency key."""

    kind: PaymentKind
    key: str
    order_id: str
    amount: Money
    transaction_id: str


class FileLedgerPlatform(SandboxIdentity):
    """A :class:`~iap_flow.ports.PaymentPlatform` keeping its ledger in an SQLite file."""

    def __init__(self, path: str | os.PathLike[str], platform: Platform = Platform.SANDBOX) -> None:
        self._path = Path(path)
        self._platform = platform
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self._path, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_SCHEMA)

    def _call(
        self, kind: PaymentKind, key: str, order: Order, amount: Money, token: str | None
    ) -> PaymentResult:
        """Record the call; return the first result under ``key``, or decide and keep one."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO calls (kind, key, order_id, pid) VALUES (?, ?, ?, ?)",
                    (kind.value, key, order.id, os.getpid()),
                )
                row = conn.execute(
                    "SELECT success, txn, error FROM results WHERE kind = ? AND key = ?",
                    (kind.value, key),
                ).fetchone()
                if row is None:
                    row = self._decide(kind, key, order, amount, token)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if row is None:
            raise PlatformUnavailable(
                f"{self._platform} did not answer the {kind} for order {order.id}",
                platform=self._platform.value,
            )
        success, txn, error = row
        return PaymentResult(
            bool(success),
            kind,
            amount,
            platform_transaction_id=txn,
            error=error,
            retryable=not success and kind is PaymentKind.REFUND,
        )

    def _decide(
        self, kind: PaymentKind, key: str, order: Order, amount: Money, token: str | None
    ) -> tuple[int, str | None, str | None] | None:
        conn = self._conn
        if kind is PaymentKind.REFUND:
            found = conn.execute(
                "SELECT token FROM results WHERE kind = 'charge' AND order_id = ? AND success = 1",
                (order.id,),
            ).fetchone()
            paid_with = found[0] if found else None
            if paid_with == REFUND_TIMEOUT:
                return None
            if paid_with == REFUND_FAILS:
                return (0, None, "refund refused by the platform")  # not kept: retried later
        elif token == TIMEOUT:
            return None
        if kind is PaymentKind.CHARGE and token == DECLINE:
            result: tuple[int, str | None, str | None] = (0, None, "card declined")
        else:
            digest = hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:20]
            result = (1, f"{kind.value[:3]}_{self._platform.value}_{digest}", None)
        conn.execute(
            "INSERT INTO results (kind, key, order_id, success, amount, currency, txn, error,"
            " token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind.value,
                key,
                order.id,
                result[0],
                amount.amount,
                amount.currency,
                result[1],
                result[2],
                token,
            ),
        )
        return result

    def charge(self, order: Order, token: str, idempotency_key: str) -> PaymentResult:
        return self._call(PaymentKind.CHARGE, idempotency_key, order, order.amount, token)

    def refund(self, refund: RefundRequest, order: Order, idempotency_key: str) -> PaymentResult:
        return self._call(PaymentKind.REFUND, idempotency_key, order, refund.amount, None)

    def answer_refund_review(
        self, refund: RefundRequest, order: Order, idempotency_key: str
    ) -> PaymentResult:
        """Accept staff's decision on a refund the platform decides; moves no money."""
        return self._call(
            PaymentKind.REVIEW_ANSWER, idempotency_key, order, refund.amount, refund.status.value
        )

    # what the tests look at
    def moves(self, kind: PaymentKind | None = None) -> list[Move]:
        """Every movement of money so far, by any process, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, key, order_id, amount, currency, txn FROM results WHERE success = 1"
                " AND kind IN ('charge', 'refund') ORDER BY rowid"
            ).fetchall()
        found = [
            Move(PaymentKind(k), key, o, Money.trusted(a, c), t) for k, key, o, a, c, t in rows
        ]
        return [m for m in found if kind is None or m.kind is kind]

    def calls(self, kind: PaymentKind) -> Counter[str]:
        """How many times each key was asked for ``kind`` (repeats included)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, COUNT(*) FROM calls WHERE kind = ? GROUP BY key", (kind.value,)
            ).fetchall()
        return Counter({key: n for key, n in rows})

    def close(self) -> None:
        with self._lock:
            self._conn.close()
