"""``POST /v1/staff/reconcile``: what the App Store and Google Play say happened, matched with
the flow (see :mod:`iap_flow.adapters.reconcile`); staff leads, developers and the system."""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal

import attrs
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from iap_flow.http.context import Routes, Service


@attrs.frozen
class SourceReportOut:
    source: str
    seen: int
    applied: int
    already_known: int
    ignored: int
    failed: int
    problems: list[str]


@attrs.frozen
class ReconcileOut:
    ran_at: str
    sources: list[SourceReportOut]


def reconcile_routes(svc: Service, *, threads: bool) -> list[HTTPRouteHandler]:
    flow = svc.flow
    r = Routes(svc, threads, staff=True, tag="staff")

    @r.post("/v1/staff/reconcile", "permission_denied", "invalid_input")
    def reconcile(
        request: Request[Any, Any, Any],
        source: Annotated[
            list[Literal["app_store", "google_play"]] | None, Parameter(max_items=2)
        ] = None,
    ) -> ReconcileOut:
        """Pull the stores' records (Apple's notification and refund history, Google's voided
        purchases and order states) and apply what the flow missed; safe to repeat."""
        # found at run time, like the platforms' adapters (config_platforms): no import edge
        run = importlib.import_module("iap_flow.adapters.reconcile").reconcile

        report = r.run(request, lambda a, k: run(flow, a, sources=source))
        return ReconcileOut(
            report.ran_at.isoformat(),
            [
                SourceReportOut(
                    s.source, s.seen, s.applied, s.already_known, s.ignored, s.failed, s.problems
                )
                for s in report.sources
            ],
        )

    return [reconcile]
