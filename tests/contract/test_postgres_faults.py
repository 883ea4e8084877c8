"""PostgreSQL faults: terminated backends (``pg_terminate_backend``) cost no command, a
commit whose outcome is unknown says so with its own type, opening takes no lock when the
schema is up to date."""

from __future__ import annotations

import os
import threading
import time

import psycopg
import pytest

from iap_flow import SYSTEM, Actor, Money, open_flow
from iap_flow.domain.errors import CommitOutcomeUnknown, StoreError

BUYER = Actor.buyer("u1")
PM = Actor("pm", "product_manager")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(os.environ["IAP_FLOW_TEST_POSTGRES_URL"], autocommit=True)


def _terminate(app: str) -> int:
    """End every backend of ``app`` and wait until each has gone; how many there were."""
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (app,),
        ).fetchall()
    return len(rows)


def _flow_url(url: str, schema: str) -> tuple[str, str]:
    app = f"iap_{schema}"
    return f"{url}&application_name={app}", app


def test_terminated_backends_cost_no_command(pg_schema: tuple[str, str]) -> None:
    """Each round kills every connection the pool holds; the next command still succeeds,
    because the pool tries a connection before handing it out."""
    schema, url = pg_schema
    url, app = _flow_url(url, schema)
    with open_flow(url) as flow:
        flow.catalogue.add(
            PM,
            sku="gems",
            title="Gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        killed = 0
        for _ in range(5):
            order = flow.orders.place(BUYER, "gems")
            killed += _terminate(app)
            paid = flow.orders.pay(BUYER, order.id, token="tok_approve")
            killed += _terminate(app)
            flow.orders.deliver(SYSTEM, paid.id)
            assert flow.orders.get(BUYER, order.id).status == "delivered"
        assert killed >= 10


def _kill_when_sleeping(app: str) -> None:
    """Terminate ``app``'s backend once it sleeps inside its COMMIT (see below)."""
    with _admin() as admin:
        for _ in range(500):
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event = 'PgSleep'",
                (app,),
            ).fetchone()
            if row is not None:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))
                return
            time.sleep(0.01)


def test_a_connection_lost_during_commit_is_commit_outcome_unknown(
    pg_schema: tuple[str, str],
) -> None:
    """A deferred trigger makes COMMIT itself take a while; the backend is terminated while
    the COMMIT runs. The caller cannot know whether it committed, and is told so."""
    schema, url = pg_schema
    url, app = _flow_url(url, schema)
    with open_flow(url) as flow:
        with _admin() as admin:
            admin.execute(f"SET search_path TO {schema}")
            admin.execute(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$"
            )
            admin.execute(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON idempotency"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        store = flow.store
        now = flow.clock.now()
        killer = threading.Thread(target=_kill_when_sleeping, args=(app,))
        killer.start()
        try:
            with pytest.raises(CommitOutcomeUnknown) as unknown, store.transaction() as tx:
                tx.idempotency_put("k1", "test", "f", '"first"', now)  # sent with the COMMIT
        finally:
            killer.join()
        assert isinstance(unknown.value.cause, psycopg.Error)
        assert "same idempotency key" in str(unknown.value)
        assert unknown.value.retryable
        # the caller retries with the same key: the write happens exactly once
        for _ in range(2):
            with store.transaction() as tx:
                if tx.idempotency_get("k1") is None:
                    tx.idempotency_put("k1", "test", "f", '"first"', now)
        with store.transaction() as tx:
            found = tx.idempotency_get("k1")
            assert found is not None and found.result == '"first"'  # type: ignore[attr-defined]


def test_a_connection_lost_before_commit_is_typed(pg_schema: tuple[str, str]) -> None:
    schema, url = pg_schema
    url, app = _flow_url(url, schema)
    with open_flow(url) as flow:
        with pytest.raises(StoreError) as lost, flow.store.transaction() as tx:
            tx.get_order("ord_none")
            _terminate(app)
            tx.get_order("ord_none")  # sent on the dead connection: nothing committed
        assert type(lost.value).__name__ == "StoreUnavailable"
        assert flow.store.get_order("ord_none") is None


def test_opening_an_up_to_date_schema_takes_no_lock(pg_schema: tuple[str, str]) -> None:
    """Another process migrating (holding the migration lock) does not stop this one from
    opening a schema that is already current."""
    schema, url = pg_schema
    open_flow(url).close()
    with _admin() as holder:
        holder.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", ("iap_flow.migrate." + schema,)
        )
        with open_flow(f"{url}&options=-c%20lock_timeout%3D1s") as flow:
            assert flow.catalogue.products() == []
