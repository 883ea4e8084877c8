"""The feedback service levels in the process document: targets by priority, business
hours, the pause while waiting on the buyer, the escalation levels and bad ratings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from iap_flow.cli import process_words as w
from iap_flow.domain.calendar import WEEKDAYS
from iap_flow.domain.models import DeadlineKind, TicketPriority
from iap_flow.domain.policy import Policy


def when(delta: timedelta, lang: str) -> str:
    """A time limit as people write it: ``24 h`` / ``24 小时``, ``30 min`` / ``30 分钟``."""
    minutes = int(delta.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    units = {"en": ("days", "h", "min"), "zh": ("天", "小时", "分钟")}[lang]
    if hours >= 168 and hours % 24 == 0 and not rest:
        return f"{hours // 24} {units[0]}"
    if not hours:
        return f"{rest} {units[2]}"
    return f"{hours} {units[1]}" + (f" {rest} {units[2]}" if rest else "")


def table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


def service_levels(policy: Policy, lang: str) -> list[str]:
    """Feedback targets by priority, the business hours they count, the pause and the levels."""

    def t(key: str) -> str:
        return w.word(w.TEXT, key, lang)

    rows = []
    for priority in TicketPriority:
        first = policy.target(DeadlineKind.TICKET_FIRST_RESPONSE, priority)
        solve = policy.target(DeadlineKind.TICKET_RESOLUTION, priority)
        rows.append(
            (w.word(w.PRIORITIES, priority.value, lang), when(first, lang), when(solve, lang))
        )
    out = [f"### {t('levels')}", ""]
    out += table((t("priority"), t("first_answer"), t("solved")), rows)
    cal = policy.ticket_calendar
    if cal is None:
        out.append(t("hours_all"))
    else:
        days = (w.PUNCT[lang][","]).join(
            w.word(w.WEEKDAYS, WEEKDAYS[d], lang) for d in sorted(cal.days)
        )
        hours = f"{cal.opens:%H:%M}-{cal.closes:%H:%M}"
        out.append(t("hours").format(days=days, hours=hours, tz=cal.tz, n=len(cal.holidays)))
    sep = " → "
    chain = sep.join(
        [w.word(w.ROLES, "support_agent", lang)]
        + [w.word(w.RECIPIENTS, r, lang) for r in policy.escalation_levels]
    )
    out += [
        "",
        t("pause"),
        "",
        t("chain").format(chain=chain, window=when(policy.escalation_window, lang)),
        "",
        t("bad_rating"),
        "",
    ]
    return out
