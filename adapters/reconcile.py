"""Reconciliation: what the App Store and Google Play say happened, matched with the flow, so
a notification that never arrived is noticed and applied.

:func:`reconcile` runs each configured store's reconciliation (see
:mod:`iap_flow.adapters.appstore.reconcile` and :mod:`iap_flow.adapters.googleplay.reconcile`)
through the flow's platform-event commands, records each run in the audit trail (with the
cursor the next run starts from) and reports what it found. Idempotent: run it as often as
you like (``iap-flow reconcile`` from cron, ``POST /v1/staff/reconcile``); what is already
known is counted, not applied again.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from iap_flow import Actor, Flow, InvalidInput

MODULES = {
    "app_store": "iap_flow.adapters.appstore.reconcile",
    "google_play": "iap_flow.adapters.googleplay.reconcile",
}
"""Store -> the module whose ``run(flow, platform, last_run)`` reconciles it."""


@attrs.define
class SourceReport:
    """What one store's reconciliation found. ``seen``: records the store listed;
    ``applied``: missed ones now recorded; ``already_known``: ones the flow had;
    ``ignored``: ones that change nothing here (a kind the flow does not act on, an order it
    never had, a partial refund); ``failed``: ones that could not be applied (``problems``
    says why; the next run tries again)."""

    source: str
    seen: int = 0
    applied: int = 0
    already_known: int = 0
    ignored: int = 0
    failed: int = 0
    problems: list[str] = attrs.Factory(list)
    cursor: dict[str, Any] = attrs.Factory(dict)
    """Where the next run starts (the time this one ran, Apple's refund-history revisions)."""

    def count(self, outcome: str, problem: str | None = None) -> None:
        self.seen += 1
        setattr(self, outcome, getattr(self, outcome) + 1)
        if problem is not None and len(self.problems) < 50:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda a, _: a.name != "cursor")


@attrs.frozen
class ReconcileReport:
    """One reconciliation run: each store's report, in the order the flow lists them."""

    ran_at: datetime
    sources: tuple[SourceReport, ...]

    @property
    def applied(self) -> int:
        return sum(s.applied for s in self.sources)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {"ran_at": self.ran_at.isoformat(), "sources": [s.as_dict() for s in self.sources]}


def reconcile(flow: Flow, actor: Actor, *, sources: Iterable[str] | None = None) -> ReconcileReport:
    """Reconcile every store the flow was opened with (or only ``sources``), as ``actor`` (a
    support lead, a developer or the system; what is applied is applied as the system's,
    like the sweep's). Raises InvalidInput for a source the flow has no platform for."""
    started = flow.clock.now()
    platforms = {str(p.platform): p for p in flow.platforms if str(p.platform) in MODULES}
    chosen = list(platforms) if sources is None else list(sources)
    if len(set(chosen)) != len(chosen):
        raise InvalidInput(f"each source at most once, got {chosen}", field="sources")
    for name in chosen:
        if name not in platforms:
            known = ", ".join(platforms) or "none"
            raise InvalidInput(
                f"no {name!r} platform to reconcile (this flow has: {known})", field="sources"
            )
    reports = []
    for name in chosen:
        last = flow.reconciliation.last_run(actor, name)  # the permission check, too
        report = SourceReport(name)
        importlib.import_module(MODULES[name]).run(flow, platforms[name], last, report)
        data = {**report.as_dict(), "cursor": report.cursor, "until": started.isoformat()}
        flow.reconciliation.record_run(actor, name, data)
        reports.append(report)
    return ReconcileReport(started, tuple(reports))


__all__ = ["ReconcileReport", "SourceReport", "reconcile"]
