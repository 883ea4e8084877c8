"""How figures read, the same in the terminal and in the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iap_flow.domain.money import CURRENCY_EXPONENTS, Money


def count(value: int) -> str:
    """A whole number with thousands separators: ``12,345``."""
    return f"{value:,}"


def pct(value: float | None) -> str:
    """A share as a percentage, ``-`` when undefined (nothing to divide by)."""
    return "-" if value is None else f"{value:.1%}"


def duration(seconds: float | None) -> str:
    """Seconds as the two largest units: ``45s``, ``12m 30s``, ``3h 05m``, ``2d 04h``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def money(amounts: Sequence[Money]) -> str:
    """Amounts in several currencies, largest first; ``0`` when there are none."""
    return ", ".join(str(m) for m in amounts) or "0"


def major(amount: Money) -> float:
    """An amount in major units (dollars, yuan) for charts, never for sums."""
    return float(amount.amount) / float(10 ** CURRENCY_EXPONENTS.get(amount.currency, 2))


def currencies(groups: Sequence[tuple[int, Sequence[Money]]]) -> list[str]:
    """Every currency in ``(paid orders, revenue)`` groups, the one most orders paid in first.

    Charts draw one chart per currency: amounts in different currencies never share an axis.
    """
    seen: dict[str, int] = {}
    for paid, revenue in groups:
        for m in revenue:
            seen[m.currency] = seen.get(m.currency, 0) + paid
    return sorted(seen, key=lambda c: (-seen[c], c))


def in_currency(amounts: Sequence[Money], currency: str | None) -> float:
    return sum(major(m) for m in amounts if m.currency == currency)


def period(since: datetime | None, until: datetime | None) -> str:
    """``2026-03-01 .. 2026-04-01`` (until exclusive); ``all time`` when unbounded."""
    if since is None and until is None:
        return "all time"
    left = "the beginning" if since is None else f"{since:%Y-%m-%d %H:%M}"
    right = "now" if until is None else f"{until:%Y-%m-%d %H:%M}"
    return f"{left} .. {right} (UTC, end exclusive)"


KIND_LABELS = {
    "refund_review": "refund review",
    "ticket_first_response": "first response",
    "ticket_resolution": "resolution",
    "refund_payout": "refund payout failed",
}


def kind(name: str) -> str:
    """A deadline kind as people say it."""
    return KIND_LABELS.get(name, name.replace("_", " "))
