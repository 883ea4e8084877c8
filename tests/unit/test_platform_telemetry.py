"""Platform calls traced (OpenTelemetry, the SDK's in-memory exporter) and counted
(Prometheus): calls by outcome, failures, failed payouts; store errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from iap_flow import Actor, PlatformUnavailable, StoreError, observability

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

_EXPORTER: list[Any] = []


@pytest.fixture
def spans() -> Iterator[Any]:
    """Finished spans of this test (one SDK provider for the process: OpenTelemetry sets the
    global provider once)."""
    if not _EXPORTER:
        exporter = in_memory.InMemorySpanExporter()
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _EXPORTER.append(exporter)
    _EXPORTER[0].clear()
    yield _EXPORTER[0]
    _EXPORTER[0].clear()


def _count(name: str, **labels: str) -> float:
    made = observability.metrics()
    assert made is not None, "the metrics extra is installed in the test environment"
    value = made.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def test_each_platform_call_is_a_span_with_its_outcome(world: Any, spans: Any) -> None:
    paid = world.order()
    declined = world.flow.orders.place(world.buyer, "gems")
    world.flow.orders.pay(world.buyer, declined.id, token="tok_decline")
    unanswered = world.flow.orders.place(world.buyer, "gems")
    with pytest.raises(PlatformUnavailable):
        world.flow.orders.pay(world.buyer, unanswered.id, token="tok_timeout")
    calls = [s for s in spans.get_finished_spans() if s.name.startswith("iap_flow.platform.")]
    assert [(s.name, s.attributes["subject_id"]) for s in calls] == [
        ("iap_flow.platform.charge", paid.id),
        ("iap_flow.platform.charge", declined.id),
        ("iap_flow.platform.charge", unanswered.id),
    ]
    assert {s.attributes["platform"] for s in calls} == {"sandbox"}
    assert [s.attributes.get("iap_flow.outcome") for s in calls] == ["ok", "declined", None]
    assert calls[2].status.status_code is trace.StatusCode.ERROR
    assert any(e.name == "exception" for e in calls[2].events)


def test_platform_failures_and_failed_payouts_are_counted(world: Any, spans: Any) -> None:
    labels = {"platform": "sandbox", "call": "charge"}
    before = (
        _count("iap_flow_platform_calls_total", outcome="ok", **labels),
        _count("iap_flow_platform_failures_total", error="PlatformUnavailable", **labels),
        _count("iap_flow_payout_failures_total", platform="sandbox"),
    )
    order = world.order(token="tok_refund_fails")
    refund = world.flow.refunds.request(world.buyer, order.id, reason="mistap")
    world.flow.refunds.approve(Actor.lead("lin"), refund.id)  # the platform refuses it
    with pytest.raises(PlatformUnavailable):
        world.order(token="tok_timeout")
    after = (
        _count("iap_flow_platform_calls_total", outcome="ok", **labels),
        _count("iap_flow_platform_failures_total", error="PlatformUnavailable", **labels),
        _count("iap_flow_payout_failures_total", platform="sandbox"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    assert b"iap_flow_payout_failures_total" in observability.exposition()
    assert any(s.name == "iap_flow.platform.refund" for s in spans.get_finished_spans())


def test_store_errors_are_counted(tmp_path: Any) -> None:
    from iap_flow import open_flow

    flow = open_flow(f"sqlite:///{tmp_path}/gone.db")
    flow.close()
    before = sum(
        _count("iap_flow_store_errors_total", error=name)
        for name in ("StoreError", "StoreUnavailable")
    )
    with pytest.raises(StoreError):
        flow.feedback.submit(Actor.buyer("u1"), rating=5, body="fine")
    after = sum(
        _count("iap_flow_store_errors_total", error=name)
        for name in ("StoreError", "StoreUnavailable")
    )
    assert after == before + 1
