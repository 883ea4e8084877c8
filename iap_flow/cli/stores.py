"""What the CLI checks about a store before opening it: that it exists and is iap-flow's.

Opening a store through :func:`~iap_flow.open_flow` creates and migrates it, which is right
for an application but wrong for a typo on the command line (``--db typo.bd`` would create
``typo.bd``; pointing at another application's file would install iap-flow's tables in it).
So every command but ``init``, ``migrate`` and ``demo`` first inspects the store *without
writing*: SQLite through a read-only connection, PostgreSQL with one catalogue query.
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

from iap_flow.domain.errors import IapFlowError

SQLITE_HEADER = b"SQLite format 3\x00"


class SetupError(IapFlowError):
    """The command cannot start: no store there, a foreign file, a missing extra or folder.

    The CLI prints it as one line and exits 2, like a usage mistake: nothing was done.
    """

    code: ClassVar[str] = "setup_error"


@attrs.frozen
class StoreState:
    """What is at a store URL: ``version`` 0 means nothing of iap-flow's yet."""

    where: str
    version: int
    current: int
    exists: bool

    @property
    def ready(self) -> bool:
        return self.exists and self.version == self.current


def sqlite_file(url: str) -> Path | None:
    """The file behind an ``sqlite:///`` URL; None for memory or another store."""
    rest = url.split("://", 1)[1] if url.startswith("sqlite://") else ""
    return Path(rest[1:]) if rest.startswith("/") and rest not in ("/", "/:memory:") else None


def _schema_version(module: str) -> int:
    version: int = importlib.import_module(module).SCHEMA_VERSION
    return version


def inspect(url: str) -> StoreState | None:
    """The state of the store at ``url`` without changing it; None for an in-memory store.

    Raises :class:`SetupError` for a file that is not an iap-flow SQLite database.
    """
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return _inspect_postgres(url)
    if scheme != "sqlite":
        known = "sqlite:///path.db, postgresql://host/db"
        raise SetupError(f"unknown store scheme {scheme!r} in {url!r}; use {known}")
    path = sqlite_file(url)
    if path is None:
        return None  # memory: nothing to check
    current = _schema_version("iap_flow.adapters.sqlite_schema")
    if not path.exists():
        return StoreState(str(path), 0, current, exists=False)
    if not path.is_file():
        raise SetupError(f"{path} is a folder, not an SQLite database")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise SetupError(f"{path} is not an SQLite database (refusing to touch it)")
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            row = (
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if "meta" in tables
                else None
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise SetupError(f"{path} cannot be read as an SQLite database: {exc}") from None
    if row is None:
        if tables:
            raise SetupError(
                f"{path} is an SQLite database of another application (no iap-flow schema); "
                "refusing to touch it"
            )
        return StoreState(str(path), 0, current, exists=False)
    return StoreState(str(path), int(row[0]), current, exists=True)


def _inspect_postgres(url: str) -> StoreState:
    try:
        psycopg = importlib.import_module("psycopg")
    except ImportError:
        raise SetupError(
            "a PostgreSQL store needs the postgres extra: pip install 'iap-flow[postgres]'"
        ) from None
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema_module = importlib.import_module("iap_flow.adapters.postgres.schema")
    schema: str = schema_module.schema_name(params.pop("schema", "iap_flow"))  # validated
    params.pop("pool_size", None)
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(params, quote_via=quote), "")
    )
    where = f"PostgreSQL schema {schema!r}"
    current: int = schema_module.SCHEMA_VERSION
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".meta',)).fetchone()
            row = None
            if found and found[0] is not None:
                row = conn.execute(
                    f"SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'"
                ).fetchone()
    except psycopg.Error as exc:
        raise SetupError(f"cannot reach {where}: {str(exc).strip().splitlines()[0]}") from None
    if row is None:
        return StoreState(where, 0, current, exists=False)
    return StoreState(where, int(row[0]), current, exists=True)


def require(url: str) -> None:
    """Refuse (:class:`SetupError`) unless ``url`` holds an iap-flow store at this version."""
    state = inspect(url)
    if state is None or state.ready:
        return
    if not state.exists:
        raise SetupError(
            f"no iap-flow store at {state.where}; create one with `iap-flow --db ... init` "
            "(or check the --db path / IAP_FLOW_DB)"
        )
    if state.version < state.current:
        raise SetupError(
            f"{state.where} has schema version {state.version}, this iap-flow needs "
            f"{state.current}: run `iap-flow --db ... migrate` first"
        )
    raise SetupError(
        f"{state.where} has schema version {state.version}, newer than this iap-flow "
        f"({state.current}); upgrade iap-flow"
    )
