"""The app backend of the deployment tests, as a process of its own: it embeds the SDK, opens
its flow from the deployment's configuration file, pushes buyers' notifications itself (the
``app`` destination: appended to a file standing in for the push service), and takes one JSON
command per line on stdin, answering one JSON line on stdout.

Usage: ``python deploy_backend.py CONFIG PUSHED_FILE``
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from iap_flow import SYSTEM, Actor, Money
from iap_flow.adapters.notifiers import JsonLinesNotifier
from iap_flow.config import open_flow_from_config
from iap_flow.flow import Flow

PM = Actor("pm", "product_manager")


def handle(flow: Flow, command: dict[str, Any]) -> dict[str, Any]:
    kind = command["do"]
    if kind == "product":
        flow.catalogue.add(
            PM,
            sku=command["sku"],
            title=command["title"],
            description="-",
            price=Money(command["cents"], "USD"),
            kind="consumable",
        )
        return {"ok": True}
    if kind == "buy":  # a sandbox purchase, paid at once
        buyer = Actor.buyer(command["user"])
        order = flow.orders.place(buyer, command["sku"], platform="sandbox")
        return {"order_id": flow.orders.pay(buyer, order.id, token="tok_approve").id}
    if kind == "refund":
        refund = flow.refunds.request(
            Actor.buyer(command["user"]), command["order_id"], reason=command["reason"]
        )
        return {"refund_id": refund.id}
    if kind == "status":
        return {"status": str(flow.refunds.get(SYSTEM, command["refund_id"]).status)}
    raise ValueError(f"unknown command {kind!r}")


def main() -> None:
    config, pushed = sys.argv[1], Path(sys.argv[2])
    flow = open_flow_from_config(config, notifiers={"app": JsonLinesNotifier(pushed)})
    stop = threading.Event()

    def push_loop() -> None:  # what the bot or cron left for the buyers' push service
        while not stop.wait(0.1):
            flow.deliver_notifications(SYSTEM)

    threading.Thread(target=push_loop, daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            answer = handle(flow, json.loads(line))
        except Exception as exc:  # answered to the test, which fails on it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    stop.set()
    flow.close()


if __name__ == "__main__":
    main()
