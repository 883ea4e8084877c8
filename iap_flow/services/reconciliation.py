"""Where each platform's reconciliation left off: every run is audited (what it found, and the
cursor the next run starts from: the time it ran, Apple's refund-history revisions), so runs
are idempotent and a missed notification is noticed in the audit trail too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iap_flow.domain.models import AuditEvent
from iap_flow.domain.roles import Actor
from iap_flow.ports import UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident

AGGREGATE = "reconciliation"


def subject(source: str) -> str:
    """The audit subject of a platform's reconciliation runs: ``reconcile_<source>``."""
    return f"reconcile_{source}"


class ReconciliationLog:
    """The audited runs of ``iap-flow reconcile`` (staff leads, developers and the system)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def last_run(self, actor: Actor, source: str) -> dict[str, Any] | None:
        """What the last run for ``source`` recorded (``ran_at``, its counts, its cursor), or
        None before the first run."""
        check(self._ctx.actor(actor), "reconcile.run")
        runs = self._ctx.store.history(subject(ident(source, "source")))
        return dict(runs[-1].data) if runs else None

    def record_run(self, actor: Actor, source: str, data: dict[str, Any]) -> datetime:
        """Audit one run for ``source`` with what it found and where the next one starts."""
        actor = self._ctx.actor(actor)
        check(actor, "reconcile.run")
        source = ident(source, "source")

        def body(tx: UnitOfWork, now: datetime) -> datetime:
            tx.add_audit(
                AuditEvent(
                    AGGREGATE,
                    subject(source),
                    "run",
                    "done",
                    "done",
                    actor.id,
                    actor.role,
                    now,
                    {**data, "ran_at": now.isoformat()},
                )
            )
            return now

        return self._ctx.run(actor, "reconcile.run", {}, None, body)
