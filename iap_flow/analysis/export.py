"""Orders, refunds, tickets and audit events as CSV or Parquet files, for notebooks.

Rows are read page by page through the store's named export queries (keyset pagination on
the id), so a million orders never sit in memory at once and every store serves the same.

What a data analyst (or a product manager) gets differs from what a support lead or a
developer gets. The model holds no e-mail or phone number of its own: what identifies a buyer
is their user id, the payment platform's transaction ids (which the platform maps back to an
account) and whatever buyers typed into free text. So, for every role but support_lead and
developer:

- ``user_id``, and ``actor_id`` where the actor was a buyer, become pseudonyms
  (``usr_`` + HMAC-SHA256 under a key): still joinable across the files of one export, and
  across exports made with the same key, but not reversible without the key;
- platform transaction and refund ids become pseudonyms the same way (``ref_``);
- free text (feedback, refund reasons, decision notes, audit data) keeps its words, because
  they are what is analysed, but e-mail addresses and phone numbers in it become
  ``[email]`` and ``[phone]``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from iap_flow.analysis.compute import Rows, period_params
from iap_flow.codec import ts
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.roles import Actor, Role, check

FORMATS = ("csv", "parquet", "sqlite")
EXPORT_DB = "iap_flow_export.db"
"""The one file a ``sqlite`` export writes (every dataset a table): Datasette's analyst mode."""
EXPORT_MARKER = "iap_flow_export"
"""The table that marks an export database (what it holds, whether ids are pseudonyms)."""
RAW_ROLES = frozenset({Role.SUPPORT_LEAD, Role.DEVELOPER})
"""Roles that export buyer identities as stored; every other reader gets pseudonyms."""
PAGE = 10_000

# Column kinds: text, int, time, user (pseudonymised), ref (pseudonymised), free (scrubbed
# text), actor (pseudonymised when the row's role is buyer), json (scrubbed JSON text).
ORDERS = (
    ("id", "text"), ("user_id", "user"), ("sku", "text"), ("title", "text"), ("kind", "text"),
    ("period", "text"), ("amount", "int"), ("currency", "text"), ("platform", "text"),
    ("platform_transaction_id", "ref"), ("subscription_id", "text"), ("status", "text"),
    ("version", "int"), ("created_at", "time"), ("updated_at", "time"), ("paid_at", "time"),
)  # fmt: skip
REFUNDS = (
    ("id", "text"), ("order_id", "text"), ("user_id", "user"), ("amount", "int"),
    ("currency", "text"), ("reason", "free"), ("status", "text"), ("platform", "text"),
    ("version", "int"), ("created_at", "time"), ("updated_at", "time"),
    ("review_due_at", "time"), ("decided_by", "text"), ("decided_at", "time"),
    ("decision_note", "free"), ("escalated", "int"), ("attempts", "int"),
    ("platform_refund_id", "ref"), ("last_error", "text"),
)  # fmt: skip
TICKETS = (
    ("id", "text"), ("user_id", "user"), ("order_id", "text"), ("rating", "int"),
    ("body", "free"), ("status", "text"), ("version", "int"), ("created_at", "time"),
    ("updated_at", "time"), ("first_response_at", "time"), ("resolved_at", "time"),
    ("escalated", "int"), ("reopen_count", "int"),
)  # fmt: skip
AUDIT_EVENTS = (
    ("id", "int"), ("aggregate", "text"), ("aggregate_id", "text"), ("event", "text"),
    ("from_state", "text"), ("to_state", "text"), ("actor_id", "actor"), ("role", "text"),
    ("at", "time"), ("data", "json"),
)  # fmt: skip


@attrs.frozen
class Dataset:
    """One exported table: its named query, its first keyset value and its columns."""

    name: str
    query: str
    start: str | int
    columns: tuple[tuple[str, str], ...]


DATASETS = (
    Dataset("orders", "export_orders", "", ORDERS),
    Dataset("refunds", "export_refunds", "", REFUNDS),
    Dataset("tickets", "export_tickets", "", TICKETS),
    Dataset("audit_events", "export_audit_events", 0, AUDIT_EVENTS),
)
DATASET_NAMES = tuple(d.name for d in DATASETS)


@attrs.frozen
class Exported:
    """One file written by :func:`export`."""

    dataset: str
    path: Path
    rows: int


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d(?:[\s().-]*\d){8,}")


def scrub(text: str) -> str:
    """Free text with e-mail addresses and phone numbers (9+ digits) replaced."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class Pseudonyms:
    """Keyed, stable pseudonyms: the same id and key always give the same pseudonym."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, prefix: str, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return f"{prefix}_{digest[:20]}"


def _cell(kind: str, value: Any, row: dict[str, Any], pseudo: Pseudonyms | None) -> Any:
    if value is None:
        return None
    if kind == "time":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.astimezone(UTC)
    if kind == "int":
        return int(value)
    if kind == "json" and not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if pseudo is None:
        return str(value)
    if kind == "user" or (kind == "actor" and row.get("role") == Role.BUYER.value):
        return pseudo("usr", str(value))
    if kind == "ref":
        return pseudo("ref", str(value))
    if kind in ("free", "json"):
        return scrub(str(value))
    return str(value)


def _pages(rows: Rows, dataset: Dataset, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    after: str | int = dataset.start
    while True:
        page = rows(dataset.query, {**params, "after": after, "limit": PAGE})
        if not page:
            return
        yield page
        if len(page) < PAGE:
            return
        after = page[-1]["id"]


def export(
    rows: Rows,
    actor: Actor,
    out_dir: str | Path,
    *,
    fmt: str = "csv",
    since: datetime | None = None,
    until: datetime | None = None,
    key: bytes | None = None,
    datasets: tuple[str, ...] = DATASET_NAMES,
) -> list[Exported]:
    """Write ``<dataset>.csv`` or ``.parquet`` files to ``out_dir``; needs ``report.read``.

    Records are those created in ``[since, until)`` (audit events: those that happened then).
    ``key`` is the pseudonym key (default: random, so pseudonyms join only within this export).
    """
    check(actor, "report.read")
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", field="fmt")
    chosen = [d for d in DATASETS if d.name in datasets]
    unknown = set(datasets) - {d.name for d in DATASETS}
    if unknown:
        raise InvalidInput(f"unknown datasets: {', '.join(sorted(unknown))}", field="datasets")
    params = period_params(since, until)
    pseudo = None if actor.role in RAW_ROLES else Pseudonyms(key or os.urandom(32))
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    writer = {"csv": _write_csv, "parquet": _write_parquet, "sqlite": _write_sqlite}[fmt]
    out = []
    if fmt == "sqlite":
        _mark(target / EXPORT_DB, pseudonymised=pseudo is not None, role=str(actor.role))
    for dataset in chosen:
        path = target / (EXPORT_DB if fmt == "sqlite" else f"{dataset.name}.{fmt}")

        def records(dataset: Dataset = dataset) -> Iterator[list[list[Any]]]:
            for page in _pages(rows, dataset, params):
                yield [
                    [_cell(kind, row.get(col), row, pseudo) for col, kind in dataset.columns]
                    for row in page
                ]

        out.append(Exported(dataset.name, path, writer(path, dataset, records)))
    return out


Records = Callable[[], Iterator[list[list[Any]]]]


def _write_csv(path: Path, dataset: Dataset, records: Records) -> int:
    """CSV with a header row; times as ISO 8601 UTC text, an empty cell for a missing value."""
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([col for col, _ in dataset.columns])
        for page in records():
            writer.writerows(
                [ts(v) if isinstance(v, datetime) else v for v in record] for record in page
            )
            n += len(page)
    return n


def _mark(path: Path, *, pseudonymised: bool, role: str) -> None:
    import sqlite_utils  # here, not at import: it pulls in numpy when installed

    db = sqlite_utils.Database(path)
    db[EXPORT_MARKER].drop(ignore=True)
    db.table(EXPORT_MARKER).insert_all(
        [
            {"key": "pseudonymised", "value": "yes" if pseudonymised else "no"},
            {"key": "exported_for", "value": role},
            {"key": "exported_at", "value": ts(datetime.now(UTC))},
        ],
        pk="key",
    )
    db.close()


def _write_sqlite(path: Path, dataset: Dataset, records: Records) -> int:
    """One table per dataset in one SQLite file; times as ISO 8601 UTC text."""
    import sqlite_utils

    db = sqlite_utils.Database(path)
    table = db[dataset.name]
    table.drop(ignore=True)
    kinds = {"int": int}
    db.create_table(dataset.name, {col: kinds.get(kind, str) for col, kind in dataset.columns})
    names = [col for col, _ in dataset.columns]
    n = 0
    for page in records():
        rows = [
            dict(zip(names, [ts(v) if isinstance(v, datetime) else v for v in record], strict=True))
            for record in page
        ]
        db.table(dataset.name).insert_all(rows)
        n += len(page)
    db.close()
    return n


def _write_parquet(path: Path, dataset: Dataset, records: Records) -> int:
    """Parquet with typed columns: text, int64 and timestamp[us, UTC]."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type hints
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:
        raise InvalidInput(
            "Parquet export needs pyarrow: pip install 'iap-flow[parquet]'", field="fmt"
        ) from exc
    types = {"int": pa.int64(), "time": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(col, types.get(kind, pa.string())) for col, kind in dataset.columns])
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for page in records():
            columns = list(zip(*page, strict=True))
            writer.write_table(pa.Table.from_arrays([list(c) for c in columns], schema=schema))
            n += len(page)
    return n
