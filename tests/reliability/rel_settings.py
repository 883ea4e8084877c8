"""Settings of the reliability suite, shared by its modules (importable from worker
processes too, unlike conftest)."""

from __future__ import annotations

import os

import pytest

PG_ENV = "IAP_FLOW_TEST_POSTGRES_URL"
SCALE = max(1, int(os.environ.get("IAP_FLOW_RELIABILITY_SCALE", "1")))
"""How much bigger than the CI run: orders, kills and fuzz examples grow with it."""


def pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"{PG_ENV} is not set: PostgreSQL runs need a server (.ci/run starts one and sets "
            f"it; locally export {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test)"
        )
    return url
