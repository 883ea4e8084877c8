"""Google Play reconciliation end to end, on SQLite and PostgreSQL, against the local Google
over real HTTP: a void whose push never came is found in voidedpurchases.list, a refund
Google made while the flow's payout was failing is found by orders.batchget; a second run
changes nothing; ``iap-flow reconcile`` prints the same report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from play_env import AGENT, START, Env, ms
from play_fakes import PACKAGE, FakePlay, refund_review

from iap_flow import SYSTEM, Actor, OrderStatus, RefundStatus
from iap_flow.adapters.reconcile import reconcile

LEAD = Actor.lead("lead_1")


@pytest.fixture
def renv(play: FakePlay, store_url: str) -> Iterator[Env]:
    e = Env(play, url=store_url)
    yield e
    e.flow.close()


def counts(report: object) -> tuple[int, int, int, int, int]:
    [s] = report.sources  # type: ignore[attr-defined]
    return (s.seen, s.applied, s.already_known, s.ignored, s.failed)


def test_a_void_whose_push_never_came_is_found_and_applied_once(renv: Env) -> None:
    env = renv
    token, order_id, order = env.bought()
    env.play.voided.append(
        {"purchaseToken": token, "orderId": order_id, "voidedTimeMillis": str(ms(START)), "voidedReason": 7}
    )  # fmt: skip
    assert counts(reconcile(env.flow, LEAD)) == (1, 1, 0, 0, 0)
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert counts(reconcile(env.flow, LEAD)) == (1, 0, 1, 0, 0)
    [listed, *_] = [c for c in env.play.calls if c.path.endswith("/voidedpurchases")]
    assert int(listed.query["startTime"][0]) >= ms(START) - 30 * 86_400_000  # at most 30 days


def test_a_refund_google_made_while_the_payout_failed_is_found_by_its_order_state(
    renv: Env,
) -> None:
    env = renv
    _, order_id, order = env.bought()
    _, chargeback_order, other = env.bought(2)
    env.flow.orders.deliver(SYSTEM, order.id)
    env.play.refund_script = ["503"]
    requested = env.flow.refunds.request(Actor.buyer("u1"), order.id, reason="did not want it")
    failed = env.flow.refunds.approve(AGENT, requested.id)
    assert failed.status is RefundStatus.FAILED  # the flow retries later...
    env.play.refunded.append(order_id)  # ...but support refunded it in Play Console meanwhile
    env.deliver(refund_review(chargeback_order, "pending-1", ms(START)))  # Google still asks

    assert counts(reconcile(env.flow, LEAD)) == (2, 1, 0, 1, 0)  # the chargeback is pending
    [batch] = [c for c in env.play.calls if c.path.endswith("orders:batchGet")]
    assert set(batch.query["orderIds"]) == {order_id, chargeback_order}
    assert env.order(order.id).status is OrderStatus.REFUNDED
    assert env.flow.refunds.get(SYSTEM, failed.id).status is RefundStatus.REFUNDED
    assert env.order(other.id).status is OrderStatus.PAID
    assert counts(reconcile(env.flow, LEAD)) == (1, 0, 0, 1, 0)  # only the chargeback is left
    assert len(env.play.refund_calls()) == 1  # no money moved by reconciling


def test_the_command_prints_the_report(renv: Env, store_url: str, tmp_path: Path) -> None:
    env = renv
    token, order_id, _ = env.bought()
    env.play.voided.append({"purchaseToken": token, "orderId": order_id, "voidedReason": 1})
    config = tmp_path / "iap-flow.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n'
        f'[notifications]\nbuyer = "jsonl:{tmp_path}/notes.jsonl"\n'
        f'[platforms.google_play]\npackage_name = "{PACKAGE}"\napi_endpoint = "{env.play.url}"\n'
    )
    from iap_flow.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "reconcile", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [source] = report["sources"]
    assert (source["source"], source["seen"], source["applied"]) == ("google_play", 1, 1)
    text = CliRunner().invoke(cli, ["--config", str(config), "reconcile"])
    assert text.exit_code == 0, text.output
    assert "google_play: seen 1, applied 0, already known 1, ignored 0, failed 0" in text.output
