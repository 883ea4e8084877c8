"""The report's text summary in the terminal (rich tables), for ``iap-flow report``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from iap_flow.analysis import fmt
from iap_flow.analysis.model import Analysis, Topics


def _table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> Table:
    table = Table(*headers, title=title, title_justify="left", title_style="bold")
    for i in numeric:
        table.columns[i].justify = "right"
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def _topics(t: Topics) -> Table | str:
    note = f" ({t.note})" if t.note else ""
    if not t.topics:
        return f"[bold]Recurring topics in {escape(t.source)}[/]: none{escape(note)}"
    return _table(
        f"Recurring topics in {t.source}: {t.texts:,} texts{note}",
        ("topic", "texts", "share", "rating", "example"),
        [
            [
                topic.label,
                f"{topic.count:,}",
                fmt.pct(topic.count / (t.texts or 1)),
                "-" if topic.average_rating is None else f"{topic.average_rating:.1f}",
                topic.examples[0],
            ]
            for topic in t.topics[:8]
        ],
        numeric=(1, 2, 3),
    )


def print_summary(a: Analysis, console: Console) -> None:
    """Print the headline figures and the short tables an analyst reads first."""
    s, r, v, f = a.sales.total, a.refunds, a.service, a.feedback
    console.print(f"[bold]Report[/] for {escape(fmt.period(a.since, a.until))}")
    headline = [
        ["orders", f"{s.orders:,}"],
        ["orders by status", ", ".join(f"{x.key} {x.orders:,}" for x in a.sales.by_status) or "-"],
        ["paid (conversion)", f"{s.paid:,} ({fmt.pct(s.conversion)})"],
        ["payment failure rate", fmt.pct(s.failure_rate)],
        ["gross revenue", fmt.money(s.revenue)],
        ["refund rate (refunded / paid orders)", fmt.pct(s.refund_rate)],
        ["refund decisions", ", ".join(f"{k} {n:,}" for k, n in r.decisions.items()) or "none"],
        [
            "review turnaround p50 / p95",
            f"{fmt.duration(r.review.p50)} / {fmt.duration(r.review.p95)}",
        ],
        [
            "refund execution p50 / p95",
            f"{fmt.duration(r.execution.p50)} / {fmt.duration(r.execution.p95)}",
        ],
        [
            "first response p50 / p95",
            f"{fmt.duration(v.first_response.p50)} / {fmt.duration(v.first_response.p95)}",
        ],
        [
            "resolution p50 / p95",
            f"{fmt.duration(v.resolution.p50)} / {fmt.duration(v.resolution.p95)}",
        ],
        ["reopen rate", f"{fmt.pct(v.reopen_rate)} ({v.reopened:,} of {v.tickets:,})"],
        [
            "deadline breaches",
            ", ".join(f"{fmt.kind(b.kind)} {b.breached:,}" for b in v.breaches) or "none",
        ],
        ["average rating", "-" if f.average is None else f"{f.average:.2f} from {f.count:,}"],
    ]
    console.print(_table("Headline", ("figure", "value"), headline))
    _subscriptions(a, console)
    console.print(
        _table(
            "Products",
            ("product", "orders", "paid", "refund rate", "revenue"),
            [
                [
                    p.label,
                    f"{p.orders:,}",
                    f"{p.paid:,}",
                    fmt.pct(p.refund_rate),
                    fmt.money(p.revenue),
                ]
                for p in a.sales.by_product[:10]
            ],
            numeric=(1, 2, 3, 4),
        )
    )
    console.print(
        _table(
            "Reviewers",
            ("reviewer", "decided", "p50", "p95", "rejected"),
            [
                [
                    p.who,
                    f"{p.spread.n:,}",
                    fmt.duration(p.spread.p50),
                    fmt.duration(p.spread.p95),
                    f"{p.rejected:,}",
                ]
                for p in r.reviewers
            ],
            numeric=(1, 2, 3, 4),
        )
    )
    console.print(
        _table(
            "Breaches by agent",
            ("agent", "deadline", "breaches"),
            [[who, fmt.kind(k), f"{n:,}"] for who, k, n in v.breaches_by_agent[:10]],
            numeric=(2,),
        )
    )
    console.print(_topics(f.topics))
    console.print(_topics(f.reason_topics))


def _subscriptions(a: Analysis, console: Console) -> None:
    """Subscriptions now (active, MRR per currency) and in the period (renewals, churn)."""
    u = a.subscriptions
    now = [
        [c.currency, f"{c.active:,}", f"{c.in_grace:,}", f"{c.cancelled:,}", str(c.mrr)]
        for c in u.by_currency
    ]
    columns = ("currency", "active now", "in grace", "cancelled", "MRR")
    console.print(_table("Subscriptions", columns, now, numeric=(1, 2, 3, 4)))
    recovery = f"{u.grace_recoveries:,} of {u.entered_grace:,} ({fmt.pct(u.grace_recovery_rate)})"
    rows = [
        ["started", f"{u.started:,}"],
        ["renewals", f"{u.renewals:,} ({fmt.money(u.renewal_revenue)})"],
        ["voluntary churn (auto-renew off, then expired)", f"{u.voluntary_churn:,}"],
        ["involuntary churn (billing failed, then expired)", f"{u.involuntary_churn:,}"],
        ["revoked (refunds, family sharing)", f"{u.revoked:,}"],
        ["grace-period recoveries", recovery],
        ["recoveries from hold", f"{u.hold_recoveries:,}"],
    ]
    console.print(_table("Subscriptions in the period", ("figure", "value"), rows))
