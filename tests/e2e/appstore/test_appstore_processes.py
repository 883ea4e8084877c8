"""Two OS processes receive the same App Store notifications at the same moment (Apple's
retry crossing the first delivery, two instances behind a load balancer), on one SQLite
file: every purchase is recorded once, with one audit event per change, and exactly one
of the two deliveries is the first; the other gets the first's result."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apple_fakes import APP_APPLE_ID, BUNDLE_ID, Apple, Chain
from appstoreserverlibrary.models.Environment import Environment

from iap_flow import SYSTEM, Actor, ManualClock, Money, open_flow
from iap_flow.adapters.appstore import AppStoreNotifications, AppStorePlatform
from iap_flow.adapters.notifiers import MemoryNotifier

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
N = 15


def _flow(db: str, root: bytes) -> tuple[Any, AppStoreNotifications]:
    platform = AppStorePlatform(
        bundle_id=BUNDLE_ID, app_apple_id=APP_APPLE_ID, environment=Environment.SANDBOX,
        root_certificates=[root], enable_online_checks=False,
    )  # fmt: skip
    flow = open_flow(
        f"sqlite:///{db}", platforms=[platform], clock=ManualClock(START), notifier=MemoryNotifier()
    )
    return flow, AppStoreNotifications(flow, platform)


def ingest_all(db: str, root: bytes, payloads: list[str], barrier: Any, out: Any) -> None:
    """Child process: ingest every notification, each at the moment the other one does."""
    flow, notes = _flow(db, root)
    seen = []
    for signed in payloads:
        barrier.wait(timeout=60)
        try:
            result = notes.ingest(signed)
            seen.append((result.notification_id, result.order_id, result.duplicate))
        except Exception as exc:  # a finding: report it, do not hide it
            seen.append(("error", f"{type(exc).__name__}: {exc}", False))
    out.put(seen)
    flow.close()


def test_two_processes_ingesting_the_same_notifications_record_each_once(tmp_path: Path) -> None:
    chain = Chain.generate()
    apple = Apple(chain)
    payloads = [
        apple.notification(
            "ONE_TIME_CHARGE", apple.transaction("gems", START, account=f"u{n}"), START
        )
        for n in range(N)
    ]
    db = str(tmp_path / "flow.db")
    flow, _ = _flow(db, chain.root_der)
    pm = Actor("pm", "product_manager")
    flow.catalogue.add(pm, sku="gems", title="Gems", description="d", price=Money(199, "USD"), kind="consumable")  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    children = [
        ctx.Process(target=ingest_all, args=(db, chain.root_der, payloads, barrier, out))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=180) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert not [r for rs in results for r in rs if r[0] == "error"], results
    for first, second in zip(*results, strict=True):
        assert first[0] == second[0] and first[1] == second[1]  # the same order for both
        assert sorted([first[2], second[2]]) == [False, True]  # one first delivery, one duplicate
    orders = {r[1] for rs in results for r in rs}
    assert len(orders) == N
    for order_id in orders:
        events = Counter(e.event for e in flow.history(SYSTEM, order_id))
        assert events == Counter({"record": 1, "pay": 1})
    flow.close()
