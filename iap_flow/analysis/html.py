"""The self-contained HTML report: one file, inline SVG charts, no script, nothing fetched.

A Content-Security-Policy in the page forbids every network load, so a browser opening the
file offline shows exactly what it shows online.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from iap_flow.analysis import fmt, svg
from iap_flow.analysis.model import Analysis, PersonStats, Segment, Topics

CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#2d3436;margin:0;background:#f5f6fa}
header{background:#2d3436;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#b2bec3}main{padding:8px 32px 32px;max-width:1180px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{margin:0 0 12px;font-size:18px}
h3{font-size:14px;margin:16px 0 6px;color:#636e72}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi b{display:block;font-size:20px}.kpi span{color:#636e72;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:24px}.row>div{flex:1 1 460px;min-width:0}
table{border-collapse:collapse;width:100%;margin:4px 0 8px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #dfe6e9;vertical-align:top}
th{color:#636e72;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ex{color:#636e72;font-size:12px}.note{color:#636e72;font-size:12px}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    if not rows:
        return '<p class="note">nothing in this period</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpis(a: Analysis) -> str:
    s, r, v, f = a.sales.total, a.refunds, a.service, a.feedback
    breached = sum(b.breached for b in v.breaches)
    cards = [
        (f"{s.orders:,}", "orders created"),
        (fmt.pct(s.conversion), "created → paid"),
        (_revenue(a), "gross revenue"),
        (fmt.pct(s.failure_rate), "payment failure rate"),
        (fmt.pct(s.refund_rate), "refund rate"),
        (f"{fmt.duration(r.review.p50)} / {fmt.duration(r.review.p95)}", "refund review p50 / p95"),
        (f"{breached:,}", "deadline breaches"),
        ("-" if f.average is None else f"{f.average:.2f} ★", f"average rating ({f.count:,})"),
    ]
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
            for value, label in cards
        )
        + "</div>"
    )


def _revenue(a: Analysis) -> str:
    """Gross revenue in every currency, the one most orders were paid in first."""
    order = fmt.currencies([(p.paid, p.revenue) for p in a.sales.by_product])
    ranked = sorted(
        a.sales.total.revenue,
        key=lambda m: order.index(m.currency) if m.currency in order else len(order),
    )
    return fmt.money(ranked)


def _segment_rows(segments: Sequence[Segment]) -> list[list[str]]:
    return [
        [
            s.label,
            f"{s.orders:,}",
            f"{s.paid:,}",
            fmt.pct(s.conversion),
            fmt.pct(s.failure_rate),
            fmt.pct(s.refund_rate),
            fmt.money(s.revenue),
        ]
        for s in segments
    ]


SEGMENT_HEADERS = ("", "orders", "paid", "conversion", "payment failures", "refund rate", "revenue")


def _sales(a: Analysis) -> str:
    sales = a.sales
    days = [d.key for d in sales.by_day]
    products = sales.by_product[:12]
    parts = [
        "<h2>Sales</h2>",
        svg.lines(
            days,
            [
                ("orders created", [float(d.orders) for d in sales.by_day]),
                ("paid", [float(d.paid) for d in sales.by_day]),
                ("payment failed", [float(d.failed) for d in sales.by_day]),
            ],
            title="orders per day",
        ),
    ]
    # One chart per currency, most used first: amounts in different currencies never share
    # an axis, and none is left out.
    shown = fmt.currencies([(p.paid, p.revenue) for p in sales.by_product])
    for cur in shown or ["-"]:
        parts += [
            f"<h3>Revenue per day ({escape(cur or '-')})</h3>",
            svg.lines(
                days,
                [(f"revenue {cur}", [fmt.in_currency(d.revenue, cur) for d in sales.by_day])],
                title=f"revenue per day in {cur}",
                height=200,
            ),
        ]
    parts.append('<div class="row"><div>')
    for cur in shown or ["-"]:
        parts += [
            f"<h3>Revenue per product ({escape(cur or '-')})</h3>",
            svg.bars(
                [
                    (p.label, fmt.in_currency(p.revenue, cur))
                    for p in products
                    if fmt.in_currency(p.revenue, cur)
                ],
                title=f"revenue per product in {cur}",
            ),
        ]
    parts += [
        "</div><div><h3>Orders per platform</h3>",
        svg.bars([(p.key, float(p.orders)) for p in sales.by_platform], title="per platform"),
        "<h3>Orders by status now</h3>",
        svg.bars(
            [(x.key, float(x.orders)) for x in sales.by_status],
            title="orders by status",
            color=svg.PALETTE[5],
        ),
        "<h3>Orders per kind</h3>",
        svg.bars(
            [(k.key, float(k.orders)) for k in sales.by_kind],
            title="per kind",
            color=svg.PALETTE[1],
        ),
        "</div></div><h3>By product</h3>",
        _table(SEGMENT_HEADERS, _segment_rows(sales.by_product)),
        "<h3>By platform and kind</h3>",
        _table(SEGMENT_HEADERS, _segment_rows([*sales.by_platform, *sales.by_kind])),
    ]
    return "<section id='sales'>" + "".join(parts) + "</section>"


def _people(people: Sequence[PersonStats], *, reviewers: bool) -> str:
    rows = [
        [
            p.who,
            f"{p.spread.n:,}",
            fmt.duration(p.spread.p50),
            fmt.duration(p.spread.p95),
            f"{p.rejected if reviewers else p.reopened:,}",
            f"{p.escalated:,}",
        ]
        for p in people
    ]
    what = "rejected" if reviewers else "reopened"
    count = "decided" if reviewers else "answered first"
    return _table(("", count, "p50", "p95", what, "escalated"), rows)


def _refunds(a: Analysis) -> str:
    r = a.refunds
    rate_rows = [
        [
            s.key,
            f"{s.paid_orders:,}",
            f"{s.refunded_orders:,}",
            fmt.pct(s.refund_rate),
            f"{s.requests:,}",
            f"{s.rejected:,}",
            fmt.money(s.refunded_amount),
        ]
        for s in [*r.by_product, *r.by_platform]
    ]
    parts = [
        "<h2>Refunds</h2>",
        '<div class="row"><div><h3>Refund rate by product</h3>',
        svg.bars(
            [(s.key, 100 * (s.refund_rate or 0.0)) for s in r.by_product[:12]],
            title="refund rate by product",
            fmt=lambda v: f"{v:.1f}%",
            color=svg.PALETTE[3],
        ),
        "<h3>Refund rate by platform</h3>",
        svg.bars(
            [(s.key, 100 * (s.refund_rate or 0.0)) for s in r.by_platform],
            title="refund rate by platform",
            fmt=lambda v: f"{v:.1f}%",
            color=svg.PALETTE[3],
        ),
        "</div><div><h3>Decisions</h3>",
        svg.stacked([(k, float(v)) for k, v in r.decisions.items()], title="refund decisions"),
        "<h3>Review turnaround by reviewer (p50, hours)</h3>",
        svg.bars(
            [(p.who, (p.spread.p50 or 0.0) / 3600) for p in r.reviewers[:12]],
            title="review turnaround by reviewer",
            fmt=lambda v: f"{v:.1f} h",
            color=svg.PALETTE[4],
        ),
        "</div></div>",
        f"<p>Review turnaround (request → decision): p50 {fmt.duration(r.review.p50)}, "
        f"p95 {fmt.duration(r.review.p95)} over {r.review.n:,} decisions. Execution "
        f"(approval → paid out): p50 {fmt.duration(r.execution.p50)}, "
        f"p95 {fmt.duration(r.execution.p95)} over {r.execution.n:,} refunds.</p>",
        "<h3>By product and platform</h3>",
        _table(
            ("", "paid orders", "refunded", "refund rate", "requests", "rejected", "paid back"),
            rate_rows,
        ),
        "<h3>Reviewers</h3>",
        _people(r.reviewers, reviewers=True),
        "<h3>Most frequent reasons, word for word</h3>",
        _table(("reason", "requests"), [[t, f"{n:,}"] for t, n in r.reasons]),
    ]
    return "<section id='refunds'>" + "".join(parts) + "</section>"


def _service(a: Analysis) -> str:
    v = a.service
    by_agent: dict[str, int] = {}
    for agent, _, n in v.breaches_by_agent:
        by_agent[agent] = by_agent.get(agent, 0) + n
    parts = [
        "<h2>Service</h2>",
        '<div class="row"><div><h3>Deadline breaches per kind</h3>',
        svg.bars(
            [(fmt.kind(b.kind), float(b.breached)) for b in v.breaches],
            title="breaches per kind",
            color=svg.PALETTE[2],
        ),
        "<h3>Escalations per kind</h3>",
        svg.bars(
            [(fmt.kind(k), float(n)) for k, n in sorted(v.escalations.items())],
            title="escalations per kind",
            color=svg.PALETTE[3],
        ),
        "</div><div><h3>Breaches per agent (who handled the case late)</h3>",
        svg.bars(
            sorted(by_agent.items(), key=lambda x: -x[1])[:12],
            title="breaches per agent",
            color=svg.PALETTE[2],
        ),
        "</div></div>",
        _table(
            ("deadline", "due in period", "breached", "breach rate", "still open"),
            [
                [
                    fmt.kind(b.kind),
                    f"{b.deadlines:,}",
                    f"{b.breached:,}",
                    fmt.pct(b.rate),
                    f"{b.still_open:,}",
                ]
                for b in v.breaches
            ],
        ),
        f"<p>First response: p50 {fmt.duration(v.first_response.p50)}, p95 "
        f"{fmt.duration(v.first_response.p95)} ({v.first_response.n:,} tickets). Resolution: "
        f"p50 {fmt.duration(v.resolution.p50)}, p95 {fmt.duration(v.resolution.p95)} "
        f"({v.resolution.n:,} resolved). Reopen rate {fmt.pct(v.reopen_rate)} "
        f"({v.reopened:,} of {v.tickets:,} tickets).</p>",
        "<h3>Agents: first response to the tickets they answered first</h3>",
        _people(v.agents, reviewers=False),
        "<h3>Breaches by agent and kind</h3>",
        _table(
            ("agent", "deadline", "breaches"),
            [[who, fmt.kind(k), f"{n:,}"] for who, k, n in v.breaches_by_agent],
            numeric_from=2,
        ),
    ]
    return "<section id='service'>" + "".join(parts) + "</section>"


def _topics(t: Topics) -> str:
    head = f"<h3>Recurring topics in {escape(t.source)}</h3>"
    sample = (
        f" (read {t.analysed:,} of {t.texts:,}: {escape(t.note)}; counts are estimates)"
        if t.stride > 1
        else f" ({t.texts:,} texts)"
    )
    if not t.topics:
        return head + f'<p class="note">{escape(t.note or "no topics")}</p>'
    rated = any(topic.average_rating is not None for topic in t.topics)
    rows = "".join(
        "<tr>"
        f"<td><b>{escape(topic.label)}</b><div class='ex'>"
        + "<br>".join(f"“{escape(e)}”" for e in topic.examples)
        + "</div></td>"
        f'<td class="n">{topic.count:,}</td><td class="n">{fmt.pct(topic.count / (t.texts or 1))}</td>'
        + (f'<td class="n">{_stars(topic.average_rating)}</td>' if rated else "")
        + f"<td>{svg.spark(t.shares(topic), title='share of each week')}</td></tr>"
        for topic in t.topics
    )
    rating_head = "<th>rating</th>" if rated else ""
    return (
        head
        + f'<p class="note">Grouped by TF-IDF + NMF{escape(sample)}; the line is the topic\'s '
        + "share of each week's texts.</p>"
        + "<table><thead><tr><th>topic and examples</th><th>texts</th><th>share</th>"
        + f"{rating_head}<th>weekly share</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _stars(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ★"


def _feedback(a: Analysis) -> str:
    f = a.feedback
    parts = [
        "<h2>Feedback</h2>",
        '<div class="row"><div><h3>Ratings</h3>',
        svg.columns(
            [(f"{k}★", float(f.ratings.get(k, 0))) for k in range(1, 6)],
            title="rating distribution",
            colors=(svg.PALETTE[3], svg.PALETTE[2], svg.PALETTE[6], svg.PALETTE[5], svg.PALETTE[1]),
        ),
        "</div><div><h3>Average rating per day</h3>",
        svg.lines(
            [d for d, _, _ in f.by_day],
            [("average rating", [avg for _, _, avg in f.by_day])],
            title="average rating per day",
            width=520,
            height=200,
            top_value=5.0,
        ),
        "</div></div>",
        _topics(f.topics),
        _topics(f.reason_topics),
    ]
    return "<section id='feedback'>" + "".join(parts) + "</section>"


DEFINITIONS = (
    "Orders, refunds and tickets are those created in the period; deadlines those due in it. "
    "Conversion: paid / created. Payment failure rate: declined / (paid + declined). "
    "Refund rate: refunded orders / paid orders. Percentiles are nearest-rank. A breach is a "
    "deadline that passed with its work undone (each one escalated to a support lead); per "
    "agent it counts against the staff member who last acted on the case before its deadline passed (else the unassigned queue)."
)


def render(a: Analysis) -> str:
    """The report as one HTML document."""
    title = f"iap-flow report: {fmt.period(a.since, a.until)}"
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        "<header><h1>Orders, refunds, service and feedback</h1>"
        f"<p>{escape(fmt.period(a.since, a.until))} · generated "
        f"{escape(a.generated_at.isoformat(sep=' ', timespec='seconds'))}</p></header><main>"
        + _kpis(a)
        + _sales(a)
        + _refunds(a)
        + _service(a)
        + _feedback(a)
        + f"<p class='note'>{escape(DEFINITIONS)}</p></main></body></html>"
    )


def write(a: Analysis, path: str | Path) -> Path:
    """Write the report to ``path`` (UTF-8) and return it."""
    target = Path(path)
    target.write_text(render(a), encoding="utf-8")
    return target
