from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_server import Api, serving


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server per test module; tests use their own buyers so they do not collide."""
    with serving(tmp_path_factory.mktemp("http")) as running:
        running.product("gems_100", 499)
        running.product("gems_big", 9_999)
        yield running
