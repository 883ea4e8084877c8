"""Every public command with hostile arguments, on both stores: each call either succeeds or
raises an :class:`~iap_flow.IapFlowError`, and a refused call writes nothing (every table
is compared before and after).

Arguments mix valid values (ids that exist, actors of every role) with hostile ones: NUL,
lone surrogates, terminal escapes, 6,000-character text, integers of any size, naive and
far-from-UTC datetimes, the wrong types. Untyped errors and writes on refusal are counted
over the whole run and reported together, so one run shows them all.
"""

from __future__ import annotations

import inspect
import sqlite3
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_settings import SCALE

from iap_flow import SYSTEM, Actor, Flow, IapFlowError, ManualClock, Money, open_flow
from iap_flow.adapters.notifiers import MemoryNotifier

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXAMPLES = 250 * SCALE
TABLES = (
    "products",
    "orders",
    "refunds",
    "tickets",
    "ticket_messages",
    "audit_events",
    "outbox",
    "deadlines",
    "idempotency",
    "processed_events",
)

HOSTILE_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "   ",
            "\x00",
            "a\x00b",
            "\ud800",
            "x \udfff y",
            "x" * 6000,
            "\x1b[2J\x1b[31mred",
            "line\nbreak",
            "u1\r\nX-Injected: 1",
            "日本語のテキスト",
            "' OR 1=1 --",
            "ord_" + "0" * 20,
        ]
    ),
)
BIG_INTS = st.one_of(
    st.integers(-10, 10_000),
    st.integers(),
    st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64]),
)
JUNK = st.sampled_from([None, 0, -1, 3.5, float("nan"), b"bytes", ["list"], {"a": 1}, object()])
ZONES = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    ),
)
TIMES = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=ZONES),
    st.datetimes(timezones=ZONES),  # anywhere from year 1 to 9999
    st.datetimes(),  # naive
    st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)]),
)
ACTORS = [
    Actor.buyer("u1"),
    Actor.buyer("u2"),
    Actor.agent("agent_1"),
    Actor.lead("lead_1"),
    Actor("pm_1", "product_manager"),
    Actor("analyst_1", "data_analyst"),
    Actor("dev_1", "developer"),
    SYSTEM,
]


def _money(amount: Any, currency: Any) -> Callable[[], Any]:
    return lambda: Money(amount, currency)


def _actor(id_: Any, role: Any) -> Callable[[], Any]:
    return lambda: Actor(id_, role)


def _lazy(value: Any) -> Callable[[], Any]:
    return lambda: value


def args_for(name: str, data: st.DataObject, pools: dict[str, list[str]]) -> Callable[[], Any]:
    """A strategy's draw for parameter ``name``, as a thunk run inside the guarded call
    (building a Money or an Actor is part of what may fail)."""

    hostile = data.draw(st.integers(0, 3)) == 0  # one parameter in four is hostile

    def pick(pool: str) -> Any:
        if hostile:
            return data.draw(st.one_of(HOSTILE_TEXT, JUNK))
        found = pools[pool]  # grows as the run creates records: pick by index, not by value
        return found[data.draw(st.integers(0, 10_000)) % len(found)]

    if name == "actor":
        if hostile and data.draw(st.booleans()):
            return data.draw(
                st.one_of(
                    st.builds(_actor, HOSTILE_TEXT, st.sampled_from(["buyer", "system", "god"])),
                    JUNK.map(_lazy),
                )
            )
        return _lazy(data.draw(st.sampled_from(ACTORS)))
    if name in ("price", "amount") and not hostile:
        return _lazy(Money(data.draw(st.integers(1, 999)), "USD"))
    if name in ("price", "amount"):
        return data.draw(
            st.one_of(
                st.builds(
                    _money,
                    BIG_INTS,
                    st.sampled_from(["USD", "JPY", "EUR", "usd", "XXX", "ABC", "", "US"]),
                ),
                JUNK.map(_lazy),
            )
        )
    valid: dict[str, st.SearchStrategy[Any]] = {
        "token": st.sampled_from(["tok_approve", "tok_decline", "tok_timeout", "tok_refund_fails"]),
        "idempotency_key": st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
        "rating": st.integers(1, 5),
        "limit": st.integers(1, 50),
        "status": st.none(),
        "cursor": st.none(),
        "user_id": st.sampled_from(["u1", "u2"]),
        "since": st.none(),
        "until": st.none(),
        "review_due": st.none(),
        "now": st.one_of(
            st.none(), st.sampled_from([T0 + timedelta(hours=h) for h in (1, 30, 100)])
        ),
    }
    if not hostile and name in valid:
        return _lazy(data.draw(valid[name]))
    table: dict[str, st.SearchStrategy[Any]] = {
        "sku": st.one_of(st.sampled_from(pools["sku"]), HOSTILE_TEXT),
        "token": st.one_of(
            st.sampled_from(["tok_approve", "tok_decline", "tok_timeout", "tok_refund_fails"]),
            HOSTILE_TEXT,
        ),
        "idempotency_key": st.one_of(st.none(), st.sampled_from(["k1", "k2"]), HOSTILE_TEXT),
        "rating": st.one_of(BIG_INTS, JUNK),
        "limit": st.one_of(BIG_INTS, JUNK),
        "kind": st.sampled_from(["consumable", "non_consumable", "subscription", "bogus", ""]),
        "period": st.sampled_from([None, "month", "year", "week", "fortnight"]),
        "platform": st.one_of(st.sampled_from(["sandbox", "app_store", "google_play"]), JUNK),
        "status": st.one_of(
            st.none(),
            st.sampled_from(["paid", "pending_payment", "in_review", "open", ["paid", "x"]]),
            HOSTILE_TEXT,
            JUNK,
        ),
        "active": st.one_of(st.booleans(), JUNK),
        "include_inactive": st.one_of(st.booleans(), JUNK),
        "cursor": st.one_of(st.none(), HOSTILE_TEXT),
    }
    if name in table:
        return _lazy(data.draw(table[name]))
    if name in ("since", "until", "review_due", "now"):
        return _lazy(data.draw(st.one_of(st.none(), TIMES, JUNK)))
    if name in ("order_id", "subscription_id"):
        return _lazy(pick("order"))
    if name == "refund_id":
        return _lazy(pick("refund"))
    if name == "ticket_id":
        return _lazy(pick("ticket"))
    if name == "subject_id":
        return _lazy(pick("order" if data.draw(st.booleans()) else "refund"))
    if name == "user_id":
        return _lazy(data.draw(st.one_of(st.none(), st.sampled_from(["u1", "u2"]), HOSTILE_TEXT)))
    if not hostile:
        return _lazy(data.draw(st.sampled_from(["plain words", "txn_1", "why not", "Gems"])))
    return _lazy(data.draw(st.one_of(st.none(), HOSTILE_TEXT)))  # any other text parameter


COMMANDS: dict[str, tuple[Callable[[Flow], Callable[..., Any]], tuple[str, ...], tuple[str, ...]]] = {
    "catalogue.add": (lambda f: f.catalogue.add, ("actor",), ("sku", "title", "description", "price", "kind", "period", "idempotency_key")),
    "catalogue.update": (lambda f: f.catalogue.update, ("actor", "sku"), ("title", "description", "price", "active", "idempotency_key")),
    "catalogue.get": (lambda f: f.catalogue.get, ("sku",), ()),
    "catalogue.products": (lambda f: f.catalogue.products, (), ("include_inactive",)),
    "orders.place": (lambda f: f.orders.place, ("actor", "sku"), ("platform", "idempotency_key")),
    "orders.renew": (lambda f: f.orders.renew, ("actor", "subscription_id"), ("token", "idempotency_key")),
    "orders.pay": (lambda f: f.orders.pay, ("actor", "order_id"), ("token", "idempotency_key")),
    "orders.record_payment": (lambda f: f.orders.record_payment, ("actor", "order_id"), ("transaction_id", "idempotency_key")),
    "orders.hold_delivery": (lambda f: f.orders.hold_delivery, ("actor", "order_id"), ("idempotency_key",)),
    "orders.deliver": (lambda f: f.orders.deliver, ("actor", "order_id"), ("idempotency_key",)),
    "orders.complete": (lambda f: f.orders.complete, ("actor", "order_id"), ("idempotency_key",)),
    "orders.cancel": (lambda f: f.orders.cancel, ("actor", "order_id"), ("idempotency_key",)),
    "orders.get": (lambda f: f.orders.get, ("actor", "order_id"), ()),
    "orders.query": (lambda f: f.orders.query, ("actor",), ("user_id", "status", "since", "until", "limit", "cursor", "subscription_id")),
    "refunds.request": (lambda f: f.refunds.request, ("actor", "order_id"), ("reason", "amount", "review_due", "platform_refund_id", "idempotency_key")),
    "refunds.approve": (lambda f: f.refunds.approve, ("actor", "refund_id"), ("note", "idempotency_key")),
    "refunds.reject": (lambda f: f.refunds.reject, ("actor", "refund_id"), ("reason", "idempotency_key")),
    "refunds.answer_platform": (lambda f: f.refunds.answer_platform, ("actor", "refund_id"), ()),
    "refunds.withdraw": (lambda f: f.refunds.withdraw, ("actor", "refund_id"), ("idempotency_key",)),
    "refunds.execute": (lambda f: f.refunds.execute, ("actor", "refund_id"), ()),
    "refunds.record_platform_refund": (lambda f: f.refunds.record_platform_refund, ("actor", "refund_id"), ("platform_refund_id", "idempotency_key")),
    "refunds.get": (lambda f: f.refunds.get, ("actor", "refund_id"), ()),
    "refunds.queue": (lambda f: f.refunds.queue, ("actor",), ("status", "user_id", "limit")),
    "feedback.submit": (lambda f: f.feedback.submit, ("actor",), ("rating", "body", "order_id", "idempotency_key")),
    "feedback.answer": (lambda f: f.feedback.answer, ("actor", "ticket_id"), ("body", "idempotency_key")),
    "feedback.resolve": (lambda f: f.feedback.resolve, ("actor", "ticket_id"), ("note", "idempotency_key")),
    "feedback.reopen": (lambda f: f.feedback.reopen, ("actor", "ticket_id"), ("body", "idempotency_key")),
    "feedback.get": (lambda f: f.feedback.get, ("actor", "ticket_id"), ()),
    "feedback.queue": (lambda f: f.feedback.queue, ("actor",), ("status", "user_id", "limit")),
    "platform_events.purchased": (lambda f: f.platform_events.purchased, ("actor",), ("platform", "transaction_id", "sku", "user_id", "original_transaction_id", "amount", "idempotency_key")),
    "platform_events.order_for_transaction": (lambda f: f.platform_events.order_for_transaction, ("actor", "platform", "transaction_id"), ()),
    "platform_events.refunded": (lambda f: f.platform_events.refunded, ("actor", "order_id"), ("reason", "platform_refund_id", "idempotency_key")),
    "platform_events.refund_declined": (lambda f: f.platform_events.refund_declined, ("actor", "order_id"), ("reason", "idempotency_key")),
    "platform_events.refund_reversed": (lambda f: f.platform_events.refund_reversed, ("actor", "order_id"), ("reason", "idempotency_key")),
    "platform_events.review_requested": (lambda f: f.platform_events.review_requested, ("actor", "order_id"), ("reason", "platform_refund_id", "review_due", "idempotency_key")),
    "flow.pending_deadlines": (lambda f: f.pending_deadlines, ("actor", "subject_id"), ()),
    "flow.record_event": (lambda f: f.record_event, ("actor", "source", "event_id"), ()),
    "flow.event_result": (lambda f: f.event_result, ("actor", "source", "event_id"), ()),
    "flow.deadlines_due": (lambda f: f.deadlines_due, ("actor",), ()),
    "flow.outbox_backlog": (lambda f: f.outbox_backlog, ("actor",), ()),
    "flow.outbox_pending": (lambda f: f.outbox_pending, ("actor",), ("after", "limit")),
    "flow.sweep": (lambda f: f.sweep, ("actor",), ("now",)),
    "flow.history": (lambda f: f.history, ("actor", "subject_id"), ()),
    "flow.deliver_notifications": (lambda f: f.deliver_notifications, ("actor",), ()),
    "flow.report": (lambda f: f.report, ("actor",), ("since", "until")),
}  # fmt: skip


def _exists(get: Callable[[Flow], Any], flow: Flow) -> bool:
    """Whether this version of the API has the command (the table lists every one so far)."""
    try:
        get(flow)
    except AttributeError:
        return False
    return True


class Snapshot:
    """Every row of every table, through the raw driver on one connection."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            self._conn: Any = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        else:
            import psycopg

            parts = urlsplit(url)
            schema = parse_qs(parts.query)["schema"][0]
            self._conn = psycopg.connect(
                f"{parts.scheme}://{parts.netloc}{parts.path}", autocommit=True
            )
            self._conn.execute(f"SET search_path TO {schema}")

    def take(self) -> dict[str, list[str]]:
        return {
            t: sorted(repr(r) for r in self._conn.execute(f"SELECT * FROM {t}").fetchall())
            for t in TABLES
        }

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def seeded(store_url: str) -> Iterator[tuple[Flow, dict[str, list[str]], Snapshot]]:
    clock = ManualClock(T0)
    flow = open_flow(store_url, clock=clock, notifier=MemoryNotifier(), seed=None)
    pm, buyer = Actor("pm_1", "product_manager"), Actor.buyer("u1")
    flow.catalogue.add(
        pm, sku="gems", title="Gems", description="d", price=Money(199, "USD"), kind="consumable"
    )
    flow.catalogue.add(pm, sku="club", title="Club", description="d", price=Money(999, "USD"), kind="subscription", period="month")  # fmt: skip
    orders, refunds, tickets = [], [], []
    for sku in ("gems", "gems", "club", "gems"):
        order = flow.orders.place(buyer, sku)
        orders.append(order.id)
    for order_id in orders[1:]:
        flow.orders.pay(buyer, order_id, token="tok_approve")
    refunds.append(flow.refunds.request(buyer, orders[1], reason="mistake").id)
    tickets.append(flow.feedback.submit(buyer, rating=2, body="slow").id)
    pools = {"sku": ["gems", "club"], "order": orders, "refund": refunds, "ticket": tickets}
    snap = Snapshot(store_url)
    yield flow, pools, snap
    snap.close()
    flow.close()


def test_every_public_command_succeeds_or_raises_a_typed_error_writing_nothing(
    seeded: tuple[Flow, dict[str, list[str]], Snapshot], store_url: str
) -> None:
    flow, pools, snap = seeded
    public = sorted(n for n, (get, _, _) in COMMANDS.items() if _exists(get, flow))
    untyped: list[str] = []
    wrote: list[str] = []
    tally: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one_call(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(public), label="command")
        get, positional, keywords = COMMANDS[name]
        pos = [args_for(p, data, pools) for p in positional]
        params = inspect.signature(get(flow)).parameters
        needed = {k for k, p in params.items() if p.default is p.empty}
        kws = {
            k: args_for(k, data, pools)
            for k in keywords
            if k in params and (k in needed or data.draw(st.booleans()))
        }
        before = snap.take()
        try:
            result = get(flow)(*[p() for p in pos], **{k: v() for k, v in kws.items()})
        except IapFlowError as exc:
            tally["refused"] += 1
            tally[type(exc).__name__] += 1
            if snap.take() != before:
                wrote.append(f"{name}: {type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            tally["untyped"] += 1
            untyped.append(f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}")
            return
        tally["ok"] += 1
        new_id = getattr(result, "id", None)
        kind = str(new_id)[:4]
        for prefix, pool in (("ord_", "order"), ("rfd_", "refund"), ("tkt_", "ticket")):
            if kind == prefix and new_id not in pools[pool]:
                pools[pool].append(str(new_id))

    one_call()
    store = store_url.split(":", 1)[0]
    calls = tally["ok"] + tally["refused"] + tally["untyped"]
    kinds = ", ".join(f"{k} {n}" for k, n in tally.most_common() if k not in ("ok", "refused"))
    print(
        f"\nfuzz {store}: {calls} calls, {tally['ok']} ok, {tally['refused']} refused typed"
        f" ({kinds}); {len(untyped)} untyped errors, {len(wrote)} refusals that wrote"
    )
    assert not untyped, f"{len(untyped)} untyped errors, e.g.:\n" + "\n".join(
        sorted(set(untyped))[:8]
    )
    assert not wrote, f"{len(wrote)} refusals wrote, e.g.:\n" + "\n".join(sorted(set(wrote))[:8])
