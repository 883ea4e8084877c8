"""What only the PostgreSQL store has: URL options, schema names, its own schema per URL."""

from __future__ import annotations

import os

import psycopg
import pytest

from iap_flow import InvalidInput, StoreError, open_flow
from iap_flow.adapters.postgres import PostgresStore


def test_url_options_reach_every_connection(pg_schema: tuple[str, str]) -> None:
    _, url = pg_schema
    store = PostgresStore.from_url(url + "&options=-c%20statement_timeout%3D4321&pool_size=2")
    try:
        with store.transaction() as tx:
            row = tx.conn.execute("SHOW statement_timeout").fetchone()
            path = tx.conn.execute("SHOW search_path").fetchone()
        assert row is not None and row[0] == "4321ms"
        assert path is not None and path[0] == store.schema
    finally:
        store.close()


def test_schemas_keep_flows_apart(pg_schema: tuple[str, str]) -> None:
    schema, url = pg_schema
    other = url.replace(schema, schema + "_b")
    try:
        with open_flow(url) as first, open_flow(other) as second:
            assert first.store.schema_version == second.store.schema_version  # type: ignore[attr-defined]
            assert first.catalogue.products() == second.catalogue.products() == []
    finally:
        with psycopg.connect(os.environ["IAP_FLOW_TEST_POSTGRES_URL"], autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}_b CASCADE")


@pytest.mark.parametrize("bad", ["Upper", "semi;colon", "1digit", "x" * 64])
def test_a_bad_schema_name_is_refused(pg_schema: tuple[str, str], bad: str) -> None:
    schema, url = pg_schema
    with pytest.raises(InvalidInput, match="schema"):
        open_flow(url.replace(f"schema={schema}", f"schema={bad}"))


def test_an_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        PostgresStore.from_url("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
