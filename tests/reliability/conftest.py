"""The reliability suite: real OS processes, SIGKILL, races and storage faults, on both stores.

CI runs it at scale 1 (a couple of minutes at most); ``make reliability`` sets
``IAP_FLOW_RELIABILITY_SCALE`` for bigger runs (more orders, kills, racers, fuzz examples).
PostgreSQL runs need ``IAP_FLOW_TEST_POSTGRES_URL`` (``.ci/run`` sets it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rel_settings import pg_base_url


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema and its store URL; dropped afterwards."""
    import psycopg

    base = pg_base_url()
    schema = f"rel_{uuid.uuid4().hex[:16]}"
    yield schema, f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/flow.db"
    _, url = request.getfixturevalue("pg_schema")
    return str(url)
