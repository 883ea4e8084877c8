"""Two OS processes decide the same refunds on one SQLite file at the same moment.

One process approves every refund, the other rejects every refund; they walk the same
refunds in the same order and meet at a barrier before each one, so every refund is
contested by two decisions started at the same moment.
For every refund exactly one decision wins, the loser gets a clear conflict error, money
moves at most once, and each change has exactly one audit event.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from iap_flow import SYSTEM, Actor, ConflictError, ManualClock, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox import SandboxPlatform

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFUNDS = 30
LEAD = Actor.lead("lead_a")
AGENT = Actor.agent("agent_b")


def decide_all(db: str, decision: str, refund_ids: list[str], barrier: Any, out: Any) -> None:
    """Child process: ``decision`` every refund, each at the moment the other process does."""
    platform = SandboxPlatform()
    flow = open_flow(
        f"sqlite:///{db}",
        clock=ManualClock(T0 + timedelta(hours=1)),
        platforms=[platform],
        notifier=MemoryNotifier(),
        seed=11 if decision == "approve" else 12,
    )
    results: dict[str, tuple[str, str]] = {}
    for refund_id in refund_ids:
        barrier.wait(timeout=60)  # both go for this refund at the same moment
        try:
            if decision == "approve":
                refund = flow.refunds.approve(LEAD, refund_id)
            else:
                refund = flow.refunds.reject(AGENT, refund_id, reason="already consumed")
            results[refund_id] = ("won", refund.status.value)
        except ConflictError as exc:  # AlreadyDecided or ConcurrentModification
            results[refund_id] = (type(exc).__name__, str(exc))
        except Exception as exc:  # anything else is a finding: report it, do not hide it
            results[refund_id] = ("error", f"{type(exc).__name__}: {exc}")
    paid = [(e.order_id, e.amount.amount, e.key) for e in platform.ledger]
    out.put((decision, results, paid))
    flow.close()


def test_exactly_one_decision_wins_each_contested_refund(file_world: Any) -> None:
    flow = file_world.flow
    refunds = [file_world.refund(buyer=Actor.buyer(f"u{n}")) for n in range(REFUNDS)]
    ids = [r.id for r in refunds]

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=decide_all, args=(flow.store.path, d, ids, barrier, out))
        for d in ("approve", "reject")
    ]
    for w in workers:
        w.start()
    reports = {}
    for _ in workers:
        decision, results, paid = out.get(timeout=120)
        reports[decision] = (results, paid)
    for w in workers:
        w.join(60)
        assert w.exitcode == 0

    approved, paid = reports["approve"]
    rejected, paid_by_rejecter = reports["reject"]
    assert paid_by_rejecter == []
    outcomes: Counter[str] = Counter()
    for refund in refunds:
        a, r = approved[refund.id], rejected[refund.id]
        assert [a[0], r[0]].count("won") == 1, (refund.id, a, r)
        loser = r if a[0] == "won" else a
        assert loser[0] in ("AlreadyDecided", "ConcurrentModification"), loser
        if loser[0] == "AlreadyDecided":
            assert "already decided by" in loser[1]
        stored = flow.refunds.get(SYSTEM, refund.id)
        trail = [e.event for e in flow.history(SYSTEM, refund.id)]
        order_trail = [e.event for e in flow.history(SYSTEM, refund.order_id)]
        if a[0] == "won":
            outcomes["approved"] += 1
            assert (stored.status, stored.decided_by) == ("refunded", LEAD.id)
            assert trail == ["request", "open_review", "approve", "submit", "confirm"]
            assert order_trail == ["place", "pay", "deliver", "complete", "refund"]
        else:
            outcomes["rejected"] += 1
            assert (stored.status, stored.decided_by) == ("rejected", AGENT.id)
            assert trail == ["request", "open_review", "reject"]
            assert order_trail == ["place", "pay", "deliver", "complete"]
    # money moved at most once per order, and only for refunds the approver won
    per_order = Counter(order_id for order_id, _, _ in paid)
    assert set(per_order.values()) <= {1}
    won = {r.order_id for r in refunds if approved[r.id][0] == "won"}
    assert set(per_order) == won
    assert sum(outcomes.values()) == REFUNDS
