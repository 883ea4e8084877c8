"""The service levels in the configuration file: ticket targets per priority, the feedback
business-hours calendar, the delivery deadline and the escalation levels.

```toml
[policy]
order_delivery = "1h"            # paid -> delivered; on-call warned, then a lead told
escalation_window = "8h"         # each escalation level's time before the next is told
escalation_levels = ["support_lead", "support_manager"]
remind_at_fraction = 0.8         # the warning before a breach, at 80 % of the time allowed

[policy.ticket_targets.urgent]   # also high, low; normal uses ticket_first_response/_resolution
first_response = "1h"
resolution = "8h"

[policy.business_hours]          # feedback targets only; store deadlines stay wall-clock
tz = "Asia/Shanghai"
days = ["mon", "tue", "wed", "thu", "fri"]
opens = "09:00"
closes = "18:00"
holidays = ["2026-10-01", "2026-10-02"]
```
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from iap_flow.domain.calendar import WEEKDAYS, BusinessCalendar
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import TicketPriority
from iap_flow.domain.policy import Policy

if TYPE_CHECKING:
    from iap_flow.config import Section

KEYS = (
    "order_delivery",
    "escalation_window",
    "escalation_levels",
    "ticket_targets",
    "business_hours",
)
"""The [policy] keys read here."""
_STAFF_LEVELS = ("support_lead", "support_manager")


def service_levels(table: Section, base: Policy) -> dict[str, Any]:
    """Policy values from the [policy] ``table`` (only those it sets)."""
    values: dict[str, Any] = {}
    for name in ("order_delivery", "escalation_window"):
        values[name] = table.duration(name, getattr(base, name))
    if table.has("escalation_levels"):
        levels = table.names("escalation_levels")
        if not levels or any(level not in _STAFF_LEVELS for level in levels):
            raise table.error(
                "escalation_levels", f"must be some of {', '.join(_STAFF_LEVELS)}, got {levels}"
            )
        values["escalation_levels"] = tuple(levels)
    if table.has("ticket_targets"):
        values["ticket_targets"] = _targets(table.table("ticket_targets"), base)
    if table.has("business_hours"):
        values["ticket_calendar"] = _calendar(table.table("business_hours"))
    return values


def _targets(table: Section, base: Policy) -> dict[TicketPriority, tuple[timedelta, timedelta]]:
    named = [p.value for p in TicketPriority if p is not TicketPriority.NORMAL]
    table.only(*named)
    targets = dict(base.ticket_targets)
    for name in table.entries():
        priority = TicketPriority(name)
        entry = table.table(name).only("first_response", "resolution")
        first, solve = targets[priority]
        targets[priority] = (
            entry.duration("first_response", first),
            entry.duration("resolution", solve),
        )
    return targets


def _clock_time(table: Section, name: str, default: time) -> time:
    value = table.text(name)
    if value is None:
        return default
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise table.error(name, f"must be a time like '09:00', got {value!r}") from None


def _calendar(table: Section) -> BusinessCalendar:
    table.only("tz", "days", "opens", "closes", "holidays")
    base = BusinessCalendar()
    days = base.days
    if table.has("days"):
        names = [d.lower()[:3] for d in table.names("days")]
        if not names or any(d not in WEEKDAYS for d in names):
            raise table.error("days", f"must be some of {', '.join(WEEKDAYS)}, got {names}")
        days = frozenset(WEEKDAYS.index(d) for d in names)
    holidays: set[date] = set()
    for value in table.names("holidays"):
        try:
            holidays.add(date.fromisoformat(value))
        except ValueError:
            raise table.error(
                "holidays", f"must be dates like '2026-10-01', got {value!r}"
            ) from None
    opens = _clock_time(table, "opens", base.opens)
    closes = _clock_time(table, "closes", base.closes)
    try:
        return BusinessCalendar(
            tz=table.text("tz") or base.tz,
            days=days,
            opens=opens,
            closes=closes,
            holidays=frozenset(holidays),
        )
    except InvalidInput as exc:
        raise table.error(exc.field or "tz", str(exc)) from None
