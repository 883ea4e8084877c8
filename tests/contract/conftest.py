"""One contract suite for every store: each test here runs on a SQLite file and on PostgreSQL.

PostgreSQL runs come from ``IAP_FLOW_TEST_POSTGRES_URL`` (``.ci/run`` sets it and starts the
server); each test gets its own schema, dropped afterwards. Without the variable the
PostgreSQL runs skip and say why.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from iap_flow import Actor, Flow, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier

PG_ENV = "IAP_FLOW_TEST_POSTGRES_URL"
START = datetime(2026, 1, 1, tzinfo=UTC)
PM = Actor("pm", "product_manager")

RawSql = Callable[[str], list[tuple[object, ...]]]


def pg_base_url() -> str:
    """The PostgreSQL server for tests, or skip the calling test saying how to get one."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"{PG_ENV} is not set: PostgreSQL tests need a server "
            "(.ci/run starts one and sets it; locally "
            f"export {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test)"
        )
    return url


def with_schema(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema name and its store URL; the schema is dropped afterwards."""
    import psycopg

    base = pg_base_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield schema, with_schema(base, schema)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """The URL of an empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/flow.db"
    _, url = request.getfixturevalue("pg_schema")
    return str(url)


@pytest.fixture
def raw_sql(store_url: str) -> RawSql:
    """Run SQL on the store's own tables through the raw driver (to tamper, or to count)."""

    def run(sql: str) -> list[tuple[object, ...]]:
        if store_url.startswith("sqlite"):
            conn = sqlite3.connect(store_url.split(":///", 1)[1], isolation_level=None)
            try:
                return list(conn.execute(sql).fetchall())
            finally:
                conn.close()
        import psycopg

        schema = parse_qs(urlsplit(store_url).query)["schema"][0]
        with psycopg.connect(pg_base_url(), autocommit=True) as pg:
            pg.execute(f"SET search_path TO {schema}")
            cur = pg.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    return run


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def notifier() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def flow(store_url: str, clock: ManualClock, notifier: MemoryNotifier) -> Iterator[Flow]:
    """A flow on the store with two products: gems (1.99 USD) and a monthly subscription."""
    with open_flow(store_url, clock=clock, notifier=notifier, seed=1) as opened:
        opened.catalogue.add(
            PM,
            sku="gems",
            title="Gems",
            description="100 gems",
            price=Money(199, "USD"),
            kind="consumable",
        )
        opened.catalogue.add(
            PM,
            sku="club",
            title="Club",
            description="monthly",
            price=Money(999, "USD"),
            kind="subscription",
            period="month",
        )
        yield opened
