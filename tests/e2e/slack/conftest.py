"""Fixtures: fake Slack, a served bot (see :mod:`slack_bot`), a SQLite file URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bot import Bot, start_bot
from slack_fakes import FakeSlack


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk honours proxy variables; the fakes live on loopback."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.groups["SAGENTS"] = ["UAGENT3"]
    yield fake
    fake.stop()


@pytest.fixture
def bot(slack: FakeSlack) -> Iterator[Bot]:
    made, stop = start_bot(slack)
    yield made
    stop()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flow.db'}"
