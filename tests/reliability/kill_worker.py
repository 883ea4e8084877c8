"""A worker for the SIGKILL harness: runs orders through their lifecycle and refunds, every
command with an idempotency key, and journals each acknowledged result.

    python kill_worker.py STORE_URL LEDGER JOURNAL DELIVERIES ORDERS RUN

Run number RUN sees the time RUN minutes ahead: each restart comes "a minute later", so what
a killed run had claimed (an idempotency key's platform call, a notification) has lapsed.

Run again after a kill, it starts over from the first order with the same keys: what was
committed comes back as the first result, what was not is done now. Prints ``ready`` once
the flow is open, so the harness kills it while it works, not while it imports.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from iap_flow import SYSTEM, Actor, Money, Notification, open_flow
from iap_flow.adapters.sandbox_ledger import FileLedgerPlatform

PM = Actor("pm", "product_manager")
AGENT = Actor.lead("lead_1")


class LaterClock:
    """The system clock, ``minutes`` ahead."""

    def __init__(self, minutes: int) -> None:
        self._ahead = timedelta(minutes=minutes)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._ahead


class FileNotifier:
    """Appends each delivered notification to a file (the page cache survives SIGKILL)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)

    def send(self, notification: Notification) -> None:
        self._file.write(json.dumps({"id": notification.id, "topic": notification.topic}) + "\n")
        self._file.flush()


def main(url: str, ledger: str, journal_path: str, deliveries: str, orders: int, run: int) -> None:
    flow = open_flow(
        url,
        platforms=[FileLedgerPlatform(ledger)],
        notifier=FileNotifier(deliveries),
        clock=LaterClock(run),
    )
    journal = open(journal_path, "a", encoding="utf-8")  # noqa: SIM115

    def ack(i: int, step: str, **data: Any) -> None:
        journal.write(json.dumps({"i": i, "step": step, "pid": os.getpid(), **data}) + "\n")
        journal.flush()

    if flow.store.get_product("gems") is None:
        try:
            flow.catalogue.add(
                PM,
                sku="gems",
                title="Gems",
                description="100 gems",
                price=Money(199, "USD"),
                kind="consumable",
                idempotency_key="product-gems",
            )
        except Exception as exc:  # a racing restart added it first: fine if it is there now
            if flow.store.get_product("gems") is None:
                raise RuntimeError("product not created") from exc
    print("ready", flush=True)
    for i in range(orders):
        buyer = Actor.buyer(f"u{i}")
        order = flow.orders.place(buyer, "gems", idempotency_key=f"place-{i}")
        ack(i, "place", order=order.id)
        order = flow.orders.pay(buyer, order.id, token="tok_approve", idempotency_key=f"pay-{i}")
        ack(i, "pay", order=order.id, status=order.status.value)
        order = flow.orders.deliver(SYSTEM, order.id, idempotency_key=f"deliver-{i}")
        ack(i, "deliver", order=order.id, status=order.status.value)
        if i % 2 == 0:
            order = flow.orders.complete(buyer, order.id, idempotency_key=f"complete-{i}")
            ack(i, "complete", order=order.id, status=order.status.value)
            continue
        refund = flow.refunds.request(
            buyer, order.id, reason="bought by mistake", idempotency_key=f"refund-{i}"
        )
        ack(i, "request", order=order.id, refund=refund.id)
        refund = flow.refunds.approve(AGENT, refund.id, idempotency_key=f"approve-{i}")
        ack(i, "approve", order=order.id, refund=refund.id, status=refund.status.value)
    flow.deliver_notifications(SYSTEM)
    print("done", flush=True)
    flow.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
