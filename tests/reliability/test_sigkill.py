"""SIGKILL at random points while a worker runs orders through their lifecycle and refunds.

After every kill a new worker starts over with the same idempotency keys. At the end:
every acknowledged result is still there, nothing was done twice (one order per buyer, one
audit event per change, each trail a chain), every notification was delivered, and the
platform's ledger (a file, shared, surviving the kills) shows money moved once per order.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from rel_raw import raw_rows
from rel_settings import SCALE

from iap_flow import SYSTEM, Actor, ManualClock, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.adapters.sandbox_ledger import FileLedgerPlatform
from iap_flow.domain.clock import SystemClock
from iap_flow.ports import PaymentKind

WORKER = Path(__file__).with_name("kill_worker.py")
ORDERS = 12 * SCALE
KILLS = 6 * SCALE
DEV = Actor("dev", "developer")


STEPS = ORDERS * 9 // 2
"""Steps a worker acknowledges in its journal over the whole run (4 an even order, 5 an odd)."""


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _run(args: list[str], kill: tuple[int, float] | None, journal: Path) -> bool:
    """Run one worker; with ``kill=(steps, delay)``, SIGKILL it ``delay`` seconds after it
    acknowledged ``steps`` steps of the run (a worker starting over acknowledges again the
    steps already done, so the point is somewhere in the whole lifecycle whatever ran before:
    placed by progress, not by the clock, it lands in work however fast the machine is).
    True if it was killed while still working."""
    start = _lines(journal)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if kill is None or first != "ready":
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and first in ("ready", "done"), f"{first}{out}\n{err}"
        return False
    steps, delay = kill
    give_up = time.monotonic() + 120
    while proc.poll() is None and _lines(journal) < start + steps and time.monotonic() < give_up:
        time.sleep(0.0005)
    time.sleep(delay)  # into the next step: mid-command, mid-transaction, mid-platform call
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return alive


def test_sigkill_at_random_points_loses_and_doubles_nothing(store_url: str, tmp_path: Path) -> None:
    ledger, journal, deliveries = (tmp_path / n for n in ("ledger.db", "journal", "sent"))
    args = [store_url, str(ledger), str(journal), str(deliveries), str(ORDERS)]
    rng = random.Random(10)
    killed = sum(
        _run([*args, str(run)], (rng.randrange(STEPS), rng.uniform(0.0, 0.004)), journal)
        for run in range(KILLS)
    )
    _run([*args, str(KILLS)], None, journal)  # the last one runs to the end
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} kills hit a working process"

    platform = FileLedgerPlatform(ledger)
    # The deployment's worker comes by later: past every outbox lease and the payout retry
    # delay, it resubmits payouts a killed worker left submitted and sends what it claimed.
    later = ManualClock(SystemClock().now() + timedelta(minutes=30 + KILLS))
    with open_flow(store_url, platforms=[platform], clock=later, notifier=MemoryNotifier()) as flow:
        flow.sweep()
        flow.deliver_notifications(SYSTEM)
        orders = {}
        for i in range(ORDERS):
            found = flow.orders.query(DEV, user_id=f"u{i}").items
            assert len(found) == 1, f"buyer u{i} has {len(found)} orders"
            orders[i] = found[0]
            assert found[0].status == ("completed" if i % 2 == 0 else "refunded")
            trail = flow.history(DEV, found[0].id)
            events = [e.event for e in trail]
            assert len(events) == len(set(events)), f"a change was made twice: {events}"
            for before, after in itertools.pairwise(trail):
                assert after.from_state == before.to_state, events
        # every acknowledged result is still what it was
        for line in journal.read_text().splitlines():
            ack = json.loads(line)
            assert orders[ack["i"]].id == ack["order"], ack
        refunds = raw_rows(store_url, "SELECT order_id, status, id FROM refunds")
        for *_, refund_id in refunds:
            trail = flow.history(DEV, str(refund_id))
            # a payout resubmitted after a kill is recorded as such, not as a second change
            events = [e.event for e in trail if not e.data.get("resubmitted")]
            assert len(events) == len(set(events)), f"a change was made twice: {events}"
        assert Counter(o for o, _, _ in refunds) == Counter(
            o.id for i, o in orders.items() if i % 2
        ), "one refund per refunded order"
        assert {s for _, s, _ in refunds} == {"refunded"}

    charges = Counter(m.order_id for m in platform.moves(PaymentKind.CHARGE))
    paid_back = Counter(m.order_id for m in platform.moves(PaymentKind.REFUND))
    assert charges == Counter(o.id for o in orders.values()), "one charge per order"
    assert paid_back == Counter(o.id for i, o in orders.items() if i % 2), "one refund each"
    assert all(m.amount.amount == 199 for m in platform.moves(PaymentKind.REFUND))

    outbox = {int(str(r[0])) for r in raw_rows(store_url, "SELECT id FROM outbox")}
    undelivered = raw_rows(store_url, "SELECT id FROM outbox WHERE delivered_at IS NULL")
    sent = Counter(json.loads(line)["id"] for line in deliveries.read_text().splitlines())
    sent.update(n.id for n in flow._ctx.notifier.sent)  # type: ignore[attr-defined]
    assert undelivered == [] and outbox <= set(sent), "a notification was lost"
    print(
        f"\nSIGKILL {store_url.split(':')[0]}: {killed} kills mid-run, {ORDERS} orders, "
        f"0 lost, 0 doubled; {sum(charges.values())} charges, {sum(paid_back.values())} refunds; "
        f"{sum(n - 1 for n in sent.values())} notifications sent more than once"
    )
