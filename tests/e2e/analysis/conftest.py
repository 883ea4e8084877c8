"""Fixtures for the analysis tests: every store, and the known history on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from analysis_history import build_known_history

PG_ENV = "IAP_FLOW_TEST_POSTGRES_URL"
ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"


@pytest.fixture
def world_class(request: pytest.FixtureRequest) -> Any:
    """``World`` from the suite's root conftest (test helpers shared by every area)."""
    return request.config.pluginmanager.get_plugin(str(ROOT_CONFTEST)).World


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """An empty store of each kind (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/flow.db"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: the PostgreSQL run of the report needs a server")
    import psycopg

    schema = f"test_analysis_{uuid.uuid4().hex[:12]}"
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def known(store_url: str, world_class: Any) -> Iterator[Any]:
    """A world on each store holding the known history."""
    w = world_class(store_url)
    build_known_history(w)
    yield w
    w.close()
