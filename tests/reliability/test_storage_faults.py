"""Storage faults: a read-only file system, a full disk (a small tmpfs), a corrupt file, a
schema newer than the code, and PostgreSQL backends terminated under a working flow. Each
gives a typed StoreError subclass carrying the real cause, and nothing half-written."""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from rel_settings import SCALE, pg_base_url

from iap_flow import SYSTEM, Actor, IapFlowError, ManualClock, Money, open_flow
from iap_flow.adapters.sandbox_ledger import FileLedgerPlatform
from iap_flow.domain.errors import (
    CommitOutcomeUnknown,
    OperationInProgress,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreFault,
    StoreFull,
    StoreReadOnly,
)
from iap_flow.ports import PaymentKind

T = TypeVar("T")
PM = Actor("pm", "product_manager")
DEV = Actor("dev", "developer")


def _mount(where: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` at ``where``, or skip the test saying why it cannot."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the test runs as another user)")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    _mount(where, "1m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _product(flow: object, sku: str) -> None:
    flow.catalogue.add(  # type: ignore[attr-defined]
        PM, sku=sku, title="G", description="d" * 2000, price=Money(1, "USD"), kind="consumable"
    )


def test_a_full_disk_is_store_full_with_its_real_cause_and_writes_nothing(
    small_disk: Path,
) -> None:
    url = f"sqlite:///{small_disk}/flow.db"
    with open_flow(url, deliver_inline=False) as flow:
        added = 0
        with pytest.raises(StoreFull) as full:
            for i in range(10_000):
                _product(flow, f"g{i}")
                added += 1
        assert "full" in str(full.value.cause) and "cannot rollback" not in str(full.value)
        assert len(flow.catalogue.products(include_inactive=True)) == added  # reads still work
        with pytest.raises(StoreFull):
            _product(flow, "one_more")
        assert flow.store.get_product("one_more") is None
    print(f"\nfull disk: StoreFull after {added} products, nothing half-written")


def test_a_read_only_file_system_is_store_read_only(tmp_path: Path) -> None:
    where = tmp_path / "ro"
    _mount(where, "4m")
    try:
        url = f"sqlite:///{where}/flow.db"
        with open_flow(url) as flow:
            _product(flow, "gems")
        done = subprocess.run(
            ["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {done.stderr.strip()}")
        with pytest.raises(StoreReadOnly) as refused:
            open_flow(url)
        assert "read-only" in str(refused.value) and refused.value.cause is not None
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_file_that_is_not_a_database_is_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "flow.db"
    path.write_bytes(b"these are not the pages you are looking for" * 200)
    with pytest.raises(StoreCorrupt) as refused:
        open_flow(f"sqlite:///{path}")
    assert refused.value.cause is not None


def test_damaged_pages_are_store_corrupt_never_a_raw_error(tmp_path: Path) -> None:
    path = tmp_path / "flow.db"
    with open_flow(f"sqlite:///{path}", deliver_inline=False) as flow:
        flow.catalogue.add(
            PM, sku="gems", title="G", description="d", price=Money(1, "USD"), kind="consumable"
        )
        ids = [flow.orders.place(Actor.buyer(f"u{i}"), "gems").id for i in range(400)]
    os.truncate(path.with_name("flow.db-wal"), 0) if path.with_name(
        "flow.db-wal"
    ).exists() else None
    data = bytearray(path.read_bytes())
    rng = random.Random(3)
    for page in range(4, len(data) // 4096):  # leave the schema pages, damage the rest
        if rng.random() < 0.5:
            at = page * 4096 + rng.randrange(0, 4000)
            data[at : at + 64] = rng.randbytes(64)
    path.write_bytes(bytes(data))
    outcomes: Counter[str] = Counter()
    try:
        flow = open_flow(f"sqlite:///{path}")
    except StoreError as exc:
        outcomes[type(exc).__name__] += 1
    else:
        for order_id in ids[::10]:
            try:
                flow.orders.get(DEV, order_id)
                flow.orders.query(DEV, user_id="u1")
                outcomes["read"] += 1
            except IapFlowError as exc:
                outcomes[type(exc).__name__] += 1
        flow.close()
    assert outcomes["StoreCorrupt"] >= 1, outcomes
    print(f"\ncorrupt pages: {dict(outcomes)}")


def test_a_schema_newer_than_the_code_is_refused_on_every_store(store_url: str) -> None:
    from rel_raw import raw_rows

    open_flow(store_url).close()
    raw_rows(store_url, "UPDATE meta SET value = '1000' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew, match="upgrade iap-flow"):
        open_flow(store_url)


def test_terminated_postgresql_backends_under_load_lose_and_double_nothing(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    """Before most commands a timer is set to terminate the flow's backends a moment later,
    so kills land before, during and after the commands (a dead idle connection, a lost
    read, a lost COMMIT). Every failure is typed; a caller that retries a retryable one with
    the same key ends with each order done once and charged once."""
    import psycopg

    schema, url = pg_schema
    app = f"rel_{schema}"
    url = f"{url}&application_name={app}"
    platform = FileLedgerPlatform(tmp_path / "ledger.db")
    rng = random.Random(5)
    killed = Counter[str]()
    admin = psycopg.connect(pg_base_url(), autocommit=True)

    def terminate() -> None:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        ).fetchall()
        killed["backends"] += len(rows)

    failures: Counter[str] = Counter()

    def retrying(call: Callable[[], T]) -> T:
        timer = threading.Timer(rng.uniform(0, 0.006), terminate)
        if rng.random() < 0.6:
            timer.start()
        try:
            for _ in range(20):
                try:
                    return call()
                except StoreFault as exc:
                    failures[type(exc).__name__] += 1
                    assert exc.retryable, exc
                except OperationInProgress:  # the lost attempt's claim: it lapses in 30 s
                    failures["OperationInProgress"] += 1
                clock.advance(timedelta(seconds=31))  # the caller retries later
            raise AssertionError("20 retries were not enough")
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()

    orders = 8 * SCALE
    clock = ManualClock(datetime.now(UTC))
    with open_flow(url, platforms=[platform], clock=clock) as flow:
        flow.catalogue.add(
            PM, sku="gems", title="G", description="d", price=Money(199, "USD"), kind="consumable"
        )
        for i in range(orders):
            buyer = Actor.buyer(f"u{i}")
            order = retrying(partial(flow.orders.place, buyer, "gems", idempotency_key=f"p{i}"))
            pay = partial(flow.orders.pay, buyer, order.id, token="tok_approve")
            retrying(partial(pay, idempotency_key=f"y{i}"))
            retrying(partial(flow.orders.deliver, SYSTEM, order.id, idempotency_key=f"d{i}"))
        admin.close()
        for i in range(orders):
            [order] = flow.orders.query(DEV, user_id=f"u{i}").items
            assert order.status == "delivered"
            events = [e.event for e in flow.history(DEV, order.id)]
            assert events == ["place", "pay", "deliver"], events
    charges = Counter(m.order_id for m in platform.moves(PaymentKind.CHARGE))
    assert set(charges.values()) == {1} and len(charges) == orders
    unknown = failures[CommitOutcomeUnknown.__name__]
    print(
        f"\nterminated backends: {killed['backends']} killed under {orders * 3} commands; "
        f"typed failures {dict(failures)} ({unknown} commit outcomes unknown), 0 lost, 0 doubled"
    )
