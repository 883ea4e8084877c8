"""Command results as the idempotency log stores them: a record as JSON text and back, so a
repeated command with the same key returns what the first one returned."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs

from iap_flow.codec import (
    _enum,
    dt_opt,
    message_from,
    message_row,
    order_from,
    order_row,
    product_from,
    product_row,
    refund_from,
    refund_row,
    ticket_from,
    ticket_row,
)
from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import (
    Order,
    Platform,
    Product,
    RefundRequest,
    Subscription,
    SubscriptionStatus,
    Ticket,
)

_SUB_TIMES = ("period_start", "period_end", "created_at", "updated_at", "grace_until")


# Results stored by the idempotency log: kind name -> (to dict, from dict).
def dump_result(obj: Any) -> str:
    if isinstance(obj, Order):
        return json.dumps({"kind": "order", "row": list(order_row(obj))})
    if isinstance(obj, RefundRequest):
        return json.dumps({"kind": "refund", "row": refund_row(obj)})
    if isinstance(obj, Ticket):
        row = ticket_row(obj)
        row["messages"] = [message_row(m) for m in obj.messages]
        return json.dumps({"kind": "ticket", "row": row})
    if isinstance(obj, Product):
        return json.dumps({"kind": "product", "row": product_row(obj)})
    if isinstance(obj, Subscription):  # times as ISO text, enums as their values
        row = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in attrs.asdict(obj).items()}  # fmt: skip
        return json.dumps({"kind": "subscription", "row": row})
    raise TypeError(f"cannot store a {type(obj).__name__} as an idempotent result")


def load_result(text: str) -> Any:
    doc = json.loads(text)
    kind, row = doc["kind"], doc["row"]
    if kind == "order":
        return order_from(row)
    if kind == "refund":
        return refund_from(row)
    if kind == "ticket":
        return ticket_from(row, [message_from(m) for m in row.pop("messages")])
    if kind == "product":
        return product_from(row)
    if kind == "subscription":
        row |= {k: dt_opt(row[k]) for k in _SUB_TIMES}
        row["status"] = _enum(SubscriptionStatus, row["status"], "subscription status")
        return Subscription(**{**row, "platform": _enum(Platform, row["platform"], "platform")})
    raise StoreError(f"unknown idempotent result kind {kind!r}")
