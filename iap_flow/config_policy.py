"""The ``[policy.*]`` tables of the configuration that are more than a duration or a number."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iap_flow.domain.policy import ANSWERS, ReviewAnswerPolicy

if TYPE_CHECKING:
    from iap_flow.config import Section

_ANSWER_DURATIONS = ("lead_time", "retry_delay")


def review_answer(table: Section) -> ReviewAnswerPolicy:
    """``[policy.review_answer]``: the policy answer to a platform's refund review."""
    table.only("enabled", *_ANSWER_DURATIONS, "delivered", "undelivered")
    base = ReviewAnswerPolicy()
    values: dict[str, Any] = {n: table.duration(n, getattr(base, n)) for n in _ANSWER_DURATIONS}
    enabled = table.raw("enabled", True)
    if not isinstance(enabled, bool):
        raise table.error("enabled", f"must be true or false, got {enabled!r}")
    for name in ("delivered", "undelivered"):
        value = table.text(name, getattr(base, name))
        if value not in ANSWERS:
            raise table.error(name, f"must be approve or decline, got {value!r}")
        values[name] = value
    return ReviewAnswerPolicy(enabled=enabled, **values)
