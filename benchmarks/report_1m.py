"""The full analysis report (HTML with charts and topics) at 1,000,000 orders on SQLite.

Builds, with bulk raw inserts in the store's own schema: 1,000,000 orders over a year (20
products, 3 platforms, 2 currencies), their audit events (4 per order), ~70,000 refund
requests with review deadlines, 100,000 feedback tickets with varied English and Chinese
texts, staff answers and deadlines. Then times ``iap-flow report --html`` end to end, and each
named aggregate on its own, beside the raw sqlite3 driver running the same SQL (the floor).

    python benchmarks/report_1m.py [N_ORDERS] [N_TICKETS]    # default 1000000 100000

Target: the full HTML report in under 10 s, every aggregate computed in the database.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iap_flow.adapters.sql import render
from iap_flow.adapters.sqlite_store import SQLiteStore, seconds_between
from iap_flow.analysis import html
from iap_flow.analysis.compute import QUERIES, analyse
from iap_flow.codec import ORDER_COLUMNS, ts

START = datetime(2025, 1, 1, tzinfo=UTC)
SKUS = [(f"sku_{i:02d}", f"Product {i}", ("consumable", "non_consumable", "subscription")[i % 3],
         (199, 499, 999, 1999, 4999)[i % 5]) for i in range(20)]  # fmt: skip
EN = {
    "subject": ["the gems", "my subscription", "the chest", "the VIP pass", "the coins", "my order"],
    "problem": [
        "never arrived after I paid", "was charged twice", "crashes the game when I open it",
        "disappeared after the update", "is too expensive for what it gives",
        "refund still not received", "did not renew although I paid", "works great, thanks",
    ],
    "detail": ["please help", "this is the second time", "fix it soon", "I want my money back",
               "support did not answer", "love the game otherwise", "", ""],
}  # fmt: skip
ZH = {
    "subject": ["宝石", "会员", "宝箱", "金币", "订阅", "礼包"],
    "problem": ["付款后一直没有到账", "被重复扣款了", "一打开游戏就闪退", "更新之后不见了",
                "价格太贵了", "退款还没有到账", "自动续费失败", "很好用，谢谢"],  # noqa: RUF001  # as typed
    "detail": ["请尽快处理", "第二次了", "客服不回复", "希望退款", "", ""],
}  # fmt: skip
REASONS = ["Bought by mistake", "My child bought this", "Did not work", "Never received it",
           "误购", "孩子误操作购买", "商品无法使用", "没有收到商品"]  # fmt: skip
STATUSES = ["completed"] * 80 + ["delivered"] * 4 + ["refunded"] * 6 + ["payment_failed"] * 6
STATUSES += ["expired"] * 2 + ["cancelled"] * 2


def text(rng: random.Random) -> str:
    lang = EN if rng.random() < 0.6 else ZH
    sep = " " if lang is EN else ""
    parts = [rng.choice(lang[k]) for k in ("subject", "problem", "detail")]
    number = f" #{rng.randrange(10_000)}" if rng.random() < 0.5 else ""
    return sep.join(p for p in parts if p) + number


def build(path: Path, n_orders: int, n_tickets: int) -> None:
    SQLiteStore(str(path)).close()  # the store's schema and migrations
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    x = conn.executemany
    conn.execute("BEGIN")
    orders, audit, refunds, deadlines = [], [], [], []
    marks = ", ".join("?" * len(ORDER_COLUMNS))
    order_sql = f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({marks})"
    audit_sql = (
        "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state,"
        " actor_id, role, at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    span = 365 * 86400 / n_orders
    for i in range(n_orders):
        sku, title, kind, price = SKUS[int(rng.paretovariate(1.2)) % 20]
        cur, amount = ("USD", price) if rng.random() < 0.6 else ("CNY", price * 6)
        platform = rng.choice(("app_store", "google_play", "app_store", "sandbox"))
        status = rng.choice(STATUSES)
        created = START + timedelta(seconds=i * span)
        paid = None if status in ("payment_failed", "expired", "cancelled") else created
        c, p = ts(created), None if paid is None else ts(paid + timedelta(seconds=20))
        oid, user = f"ord_{i:020d}", f"u{rng.randrange(200_000)}"
        orders.append((oid, user, sku, title, kind, None, amount, cur, platform, None, None,
                       status, 4, c, c, p, 0))  # fmt: skip
        audit.append(("order", oid, "place", None, "pending_payment", user, "buyer", c, None))
        audit.append(("order", oid, "pay", "pending_payment", "paid", user, "buyer", c, None))
        audit.append(("order", oid, "deliver", "paid", "delivered", "system", "system", c, None))
        audit.append(("order", oid, "complete", "delivered", "completed", user, "buyer", c, None))
        deadlines.append(("order_payment", oid, c, None, "done"))
        if paid is not None and (status == "refunded" or rng.random() < 0.02):
            refunds.append(refund_row(rng, i, oid, user, amount, cur, platform, status, created))
        if len(orders) == 20_000:
            x(order_sql, orders), x(audit_sql, audit)
            orders.clear(), audit.clear()
    x(order_sql, orders), x(audit_sql, audit)
    x(
        "INSERT INTO refunds (id, order_id, user_id, amount, currency, reason, status, platform,"
        " version, created_at, updated_at, review_due_at, decided_by, decided_at, escalated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 4, ?, ?, ?, ?, ?, ?)",
        refunds,
    )
    for r in refunds:
        breached, due = r[13], r[10]
        deadlines.append(("refund_review", r[0], due, None, "fired" if breached else "done"))
        if breached:
            audit.append(("refund", r[0], "escalate", "in_review", "in_review", "system",
                          "system", due, '{"deadline": "refund_review"}'))  # fmt: skip
    tickets(conn, rng, n_tickets, deadlines, audit)
    x(audit_sql, audit)
    x("INSERT INTO deadlines (kind, subject_id, due_at, remind_at, state) VALUES (?, ?, ?, ?, ?)",
      deadlines)  # fmt: skip
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def refund_row(rng: random.Random, i: int, oid: str, user: str, amount: int, cur: str,
               platform: str, status: str, created: datetime) -> tuple[Any, ...]:  # fmt: skip
    asked = created + timedelta(hours=rng.uniform(1, 200))
    hours = rng.lognormvariate(2.0, 0.8)
    decided = asked + timedelta(hours=hours)
    reviewer = rng.choice(("agent_ana", "agent_bo", "agent_chen")) if hours < 24 else "lead_dee"
    final = "refunded" if status == "refunded" else "rejected"
    return (f"rfd_{i:020d}", oid, user, amount, cur, rng.choice(REASONS), final, platform,
            ts(asked), ts(decided), ts(asked + timedelta(hours=24)), reviewer, ts(decided),
            int(hours >= 24))  # fmt: skip


def tickets(conn: sqlite3.Connection, rng: random.Random, n: int, deadlines: list[Any],
            audit: list[Any]) -> None:  # fmt: skip
    rows, messages = [], []
    for i in range(n):
        created = START + timedelta(seconds=rng.uniform(0, 365 * 86400))
        tid, c = f"tkt_{i:020d}", ts(created)
        first = (
            created + timedelta(hours=rng.lognormvariate(0.8, 0.9)) if rng.random() < 0.95 else None
        )
        resolved = (
            first + timedelta(hours=rng.uniform(1, 100)) if first and rng.random() < 0.8 else None
        )
        reopened = int(resolved is None and first is not None and rng.random() < 0.3)
        status = (
            "resolved" if resolved else "reopened" if reopened else "answered" if first else "open"
        )
        agent = rng.choice(("agent_ana", "agent_bo", "agent_chen"))
        late_first = first is None or first - created > timedelta(hours=4)
        late_res = resolved is None or resolved - created > timedelta(hours=72)
        rows.append((tid, f"u{rng.randrange(200_000)}", None, rng.choice((1, 2, 2, 3, 4, 5, 5, 5)),
                     text(rng), status, 3, c, c, None if first is None else ts(first),
                     None if resolved is None else ts(resolved), int(late_first or late_res),
                     reopened))  # fmt: skip
        if first is not None:
            messages.append((tid, agent, "support_agent", "Thanks, we are on it.", ts(first)))
        due_first, due_res = ts(created + timedelta(hours=4)), ts(created + timedelta(hours=72))
        deadlines.append(
            ("ticket_first_response", tid, due_first, None, "fired" if late_first else "done")
        )
        deadlines.append(("ticket_resolution", tid, due_res, None, "fired" if late_res else "done"))
        for kind, late, due in (("ticket_first_response", late_first, due_first),
                                ("ticket_resolution", late_res, due_res)):  # fmt: skip
            if late:
                audit.append(("ticket", tid, "escalate", status, status, "system", "system", due,
                              f'{{"deadline": "{kind}"}}'))  # fmt: skip
    conn.executemany(
        "INSERT INTO tickets (id, user_id, order_id, rating, body, status, version, created_at,"
        " updated_at, first_response_at, resolved_at, escalated, reopen_count)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO ticket_messages (ticket_id, author_id, role, body, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        messages,
    )


def timed_report(path: Path) -> tuple[float, dict[str, float], int]:
    """The report as ``iap-flow report --html`` makes it; seconds per aggregate."""
    store = SQLiteStore(str(path))
    spent: dict[str, float] = defaultdict(float)

    def rows(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        result = store.report_rows(name, params)
        spent[name] += time.perf_counter() - t0
        return result

    t0 = time.perf_counter()
    analysis = analyse(rows, None, None, now=datetime.now(UTC))
    page = html.render(analysis)
    (path.parent / "report.html").write_text(page, encoding="utf-8")
    total = time.perf_counter() - t0
    store.close()
    return total, dict(spent), len(page)


def raw_sql(path: Path) -> dict[str, float]:
    """Each aggregate through the bare sqlite3 driver: the floor the store can reach."""
    conn = sqlite3.connect(str(path))
    params = {"since": None, "until": None, "stride": 5, "after": "", "limit": 10_000}
    out = {}
    for name in QUERIES:
        sql = render(name, seconds=seconds_between)
        t0 = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out[name] = time.perf_counter() - t0
    conn.close()
    return out


def main() -> None:
    n_orders = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_tickets = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.db"
        t0 = time.perf_counter()
        build(path, n_orders, n_tickets)
        print(f"built {n_orders:,} orders and {n_tickets:,} tickets in {time.perf_counter() - t0:.1f} s"
              f" ({path.stat().st_size / 2**20:,.0f} MiB)")  # fmt: skip
        raw_sql(path)  # warm the page cache for both sides alike
        total, spent, size = timed_report(path)
        raw = raw_sql(path)
        in_db, floor = sum(spent.values()), sum(raw.values())
        print(f"full HTML report: {total:.2f} s (target < 10 s), page {size / 1024:,.0f} KiB")
        print(
            f"  the same SQL on a bare sqlite3 connection, one query after another:"
            f" {floor:.2f} s (report / raw = {total / floor:.2f})"
        )
        print(
            f"  time inside Store.report_rows, summed over both threads: {in_db:.2f} s"
            " (the topic model runs in a second thread beside the aggregates)"
        )
        print(f"  {'aggregate':<22}{'store s':>9}{'raw s':>9}{'ratio':>7}")
        for name in sorted(spent, key=lambda n: -spent[n]):
            ratio = spent[name] / raw[name] if raw[name] > 0 else float("nan")
            print(f"  {name:<22}{spent[name]:>9.3f}{raw[name]:>9.3f}{ratio:>7.2f}")
        print(
            "  (raw = the same SQL on a bare sqlite3 connection; the texts queries read every"
            " 5th text there, and the report reads a sample sized by --max-texts)"
        )


if __name__ == "__main__":
    main()
