"""The peer a Python shop would pick: Django's ORM with django-fsm-2, beside iap-flow, on SQLite.

The same persisted lifecycle in one run, one transaction per step, each side in its own
fresh file with the same pragmas (WAL, synchronous=NORMAL, writers take the lock up front):
  place    -> read the product, INSERT order, INSERT audit event, INSERT payment deadline
  pay      -> read the order, the FSM transition, UPDATE order (django-fsm's
              ConcurrentTransitionMixin checks the state it was read in), INSERT audit event,
              close the deadline, INSERT outbox notification; then mark it delivered
  deliver  -> read the order, transition, UPDATE order, INSERT audit event
  complete -> read the order, transition, UPDATE order, INSERT audit event
Django's models have iap-flow's columns (its own tables: ``peer_*``). "simple" is the
lifecycle a Django shop usually writes: the order row and its audit event only (no
deadline, no outbox, no delivery mark).

    pip install '.[bench]'   # Django and django-fsm-2, never a dependency of iap-flow
    python benchmarks/django_peer.py [N]

Prints the machine, N, rounds, each side's median and iap-flow / Django throughput.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lifecycle  # the sibling benchmark: iap-flow's side, found through sys.path
from machine import describe

ROUNDS = 5
START = datetime(2026, 1, 1, tzinfo=UTC)


def _define_models() -> None:
    """The peer's models, in a module of their own (Django wants models importable)."""
    from types import ModuleType

    from django.db import models
    from django_fsm import ConcurrentTransitionMixin, FSMField, transition

    mod = ModuleType("django_peer_models")

    class Product(models.Model):
        sku = models.TextField(primary_key=True)
        title = models.TextField()
        description = models.TextField()
        price_amount = models.BigIntegerField()
        currency = models.TextField()
        kind = models.TextField()
        period = models.TextField(null=True)
        active = models.SmallIntegerField(default=1)
        version = models.IntegerField(default=1)
        created_at = models.DateTimeField(null=True)
        updated_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "peer"
            db_table = "peer_products"

    class Order(ConcurrentTransitionMixin, models.Model):
        id = models.TextField(primary_key=True)
        user_id = models.TextField()
        sku = models.TextField()
        title = models.TextField()
        kind = models.TextField()
        period = models.TextField(null=True)
        amount = models.BigIntegerField()
        currency = models.TextField()
        platform = models.TextField()
        platform_transaction_id = models.TextField(null=True)
        subscription_id = models.TextField(null=True)
        status = FSMField(default="pending_payment", protected=False)
        version = models.IntegerField(default=1)
        created_at = models.DateTimeField()
        updated_at = models.DateTimeField()
        paid_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "peer"
            db_table = "peer_orders"
            indexes = (  # iap-flow's order indexes
                models.Index(fields=["user_id", "status", "created_at", "id"]),
                models.Index(fields=["user_id", "created_at", "id"]),
                models.Index(fields=["status", "created_at"]),
                models.Index(fields=["created_at", "id"]),
            )

        @transition(field=status, source="pending_payment", target="paid")
        def pay(self, txn: str, at: datetime) -> None:
            self.platform_transaction_id, self.paid_at = txn, at

        @transition(field=status, source="paid", target="delivered")
        def deliver(self) -> None:
            pass

        @transition(field=status, source="delivered", target="completed")
        def complete(self) -> None:
            pass

    class AuditEvent(models.Model):
        aggregate = models.TextField()
        aggregate_id = models.TextField()
        event = models.TextField()
        from_state = models.TextField(null=True)
        to_state = models.TextField()
        actor_id = models.TextField()
        role = models.TextField()
        at = models.DateTimeField()
        data = models.JSONField(null=True)

        class Meta:
            app_label = "peer"
            db_table = "peer_audit_events"
            indexes = (models.Index(fields=["aggregate_id", "id"]),)

    class Deadline(models.Model):
        kind = models.TextField()
        subject_id = models.TextField()
        due_at = models.DateTimeField()
        remind_at = models.DateTimeField(null=True)
        state = models.TextField()

        class Meta:
            app_label = "peer"
            db_table = "peer_deadlines"
            indexes = (models.Index(fields=["due_at"]), models.Index(fields=["subject_id"]))

    class Outbox(models.Model):
        topic = models.TextField()
        recipient = models.TextField()
        payload = models.JSONField()
        created_at = models.DateTimeField()
        delivered_at = models.DateTimeField(null=True)
        attempts = models.IntegerField(default=0)
        last_error = models.TextField(null=True)
        claimed_until = models.DateTimeField(null=True)
        audience = models.TextField(default="buyer")

        class Meta:
            app_label = "peer"
            db_table = "peer_outbox"
            indexes = (models.Index(fields=["audience", "id"]),)

    for model in (Product, Order, AuditEvent, Deadline, Outbox):
        setattr(mod, model.__name__, model)
    sys.modules["django_peer_models"] = mod


def django_run(m: Any, n: int, *, full: bool) -> float:
    """Seconds for ``n`` lifecycles through the ORM (``full``: iap-flow's rows; else simple)."""
    from django.db import connection, transaction
    from django.db.models import F

    for model in (m.Product, m.Order, m.AuditEvent, m.Deadline, m.Outbox):
        model.objects.all().delete()
    m.Product.objects.create(
        sku="gems", title="Gems", description="100 gems", price_amount=199, currency="USD",
        kind="consumable",
    )  # fmt: skip
    now = START
    due, lease = now + timedelta(minutes=30), now + timedelta(seconds=60)

    def audit(oid: str, event: str, src: str | None, dst: str, who: str, role: str, data: Any):
        m.AuditEvent.objects.create(
            aggregate="order", aggregate_id=oid, event=event, from_state=src, to_state=dst,
            actor_id=who, role=role, at=now, data=data,
        )  # fmt: skip

    def step(oid: str, event: str, who: str, role: str) -> None:
        with transaction.atomic():
            order = m.Order.objects.get(id=oid)
            src = order.status
            getattr(order, event)()
            order.version += 1
            order.updated_at = now
            order.save()
            audit(oid, event, src, order.status, who, role, None)

    start = time.perf_counter()
    for i in range(n):
        oid, user, txn = f"ord_{i:020d}", f"u{i % 1000}", f"pay_{i:08d}"
        with transaction.atomic():
            product = m.Product.objects.get(sku="gems")
            m.Order.objects.create(
                id=oid, user_id=user, sku=product.sku, title=product.title, kind=product.kind,
                period=product.period, amount=product.price_amount, currency=product.currency,
                platform="sandbox", created_at=now, updated_at=now,
            )  # fmt: skip
            audit(oid, "place", None, "pending_payment", user, "buyer", None)
            if full:
                m.Deadline.objects.create(
                    kind="order_payment", subject_id=oid, due_at=due, state="pending"
                )
        with transaction.atomic():
            order = m.Order.objects.get(id=oid)
            order.pay(txn, now)
            order.version += 1
            order.updated_at = now
            order.save()
            audit(oid, "pay", "pending_payment", "paid", user, "buyer", {"transaction_id": txn})
            if full:
                m.Deadline.objects.filter(
                    subject_id=oid, state__in=("pending", "reminded"), kind__in=("order_payment",)
                ).update(state="done")
                note = m.Outbox.objects.create(
                    topic="order.paid", recipient=user, created_at=now, claimed_until=lease,
                    payload={"order_id": oid, "amount": 199, "currency": "USD",
                             "transaction_id": txn},
                )  # fmt: skip
        if full:
            with transaction.atomic():
                m.Outbox.objects.filter(id=note.id).update(
                    delivered_at=now, attempts=F("attempts") + 1
                )
        step(oid, "deliver", "system", "system")
        step(oid, "complete", user, "buyer")
    elapsed = time.perf_counter() - start
    assert m.Order.objects.filter(status="completed").count() == n
    connection.close()
    return elapsed


def main() -> list[tuple[str, str, str]]:
    """Runs and prints the benchmark; returns its README table row."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    with tempfile.TemporaryDirectory() as tmp:
        models = _configure(Path(tmp) / "django.db")
        full_t, simple_t, sdk_t = [], [], []
        for r in range(ROUNDS):
            full_t.append(django_run(models, n, full=True))
            sdk_t.append(lifecycle.sdk(Path(tmp) / f"sdk{r}.db", n))
            simple_t.append(django_run(models, n, full=False))
    f, s, k = (statistics.median(x) for x in (full_t, simple_t, sdk_t))
    print(describe())
    print(
        f"Django {_version()} ORM + django-fsm-2 vs iap-flow on SQLite, N={n} orders"
        f" (4 state changes each), median of {ROUNDS} rounds"
    )
    print(f"  Django, iap-flow's rows : {f:.3f} s  {n / f:7.0f} orders/s")
    print(f"  Django, simple lifecycle: {s:.3f} s  {n / s:7.0f} orders/s (order + audit rows only)")
    print(f"  iap-flow                : {k:.3f} s  {n / k:7.0f} orders/s")
    print(f"  iap-flow / Django throughput, same rows: {f / k:.2f}x (aim >= 3x)")
    print(f"  iap-flow / Django throughput, Django's simple lifecycle: {s / k:.2f}x")
    return [
        (
            f"the lifecycle through Django {_version()} ORM + django-fsm-2 on SQLite, same rows"
            " (`django_peer.py`)",
            "iap-flow >= 3x",
            f"**{f / k:.1f}x** ({n / k:.0f} orders/s against {n / f:.0f}; Django's simple"
            f" lifecycle without deadline and outbox: {n / s:.0f}, {s / k:.1f}x)",
        )
    ]


def _configure(path: Path) -> Any:
    """Django set up on ``path`` with the peer's tables created; the models module."""
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
        INSTALLED_APPS=[],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    _define_models()
    from django.db import connection

    models = sys.modules["django_peer_models"]
    with connection.schema_editor() as editor:
        for model in (models.Product, models.Order, models.AuditEvent, models.Deadline):
            editor.create_model(model)
        editor.create_model(models.Outbox)
    return models


def _version() -> str:
    import django

    return django.get_version()


if __name__ == "__main__":
    main()
