"""The subscription figures of the analysis report, as named aggregates (portable SQL for
SQLite and PostgreSQL; ``:since`` / ``:until`` bound the period, None unbounded).

- ``subscriptions_now``: per currency, the subscriptions that give access now (active,
  cancelled but running to their period end, in grace period) and the year's recurring
  revenue of those that will renew (active or in grace, auto-renew on), at the price of
  the order that paid their current period: a monthly plan counts 12 times, a weekly one
  52 times (a year of 52 weeks), a yearly one once. The report divides by 12 for the
  monthly recurring revenue (rounded half up to the minor unit).
- ``subscription_renewals``: renewal orders paid in the period, per currency.
- ``subscription_moves``: the subscription machine's moves in the period, from the audit
  trail: starts, voluntary churn (expired after auto-renew was turned off), involuntary
  churn (expired from any other state: billing failed, on hold, paused, or the store ended
  it), revocations, grace periods entered, recoveries from grace and from hold.
"""

from __future__ import annotations

_PERIOD = "(:since IS NULL OR {col} >= :since) AND (:until IS NULL OR {col} < :until)"
_YEARLY = (
    "CASE o.period WHEN 'year' THEN o.amount WHEN 'week' THEN o.amount * 52 ELSE o.amount * 12 END"
)

SUBSCRIPTION_REPORTS: dict[str, str] = {
    "subscriptions_now": (
        "SELECT o.currency AS currency, COUNT(*) AS active,"
        " SUM(CASE WHEN s.status = 'in_grace_period' THEN 1 ELSE 0 END) AS in_grace,"
        " SUM(CASE WHEN s.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,"
        " SUM(CASE WHEN s.status IN ('active', 'in_grace_period') AND s.auto_renew = 1"
        f" THEN {_YEARLY} ELSE 0 END) AS yearly"
        " FROM subscriptions s JOIN orders o ON o.id = s.latest_order_id"
        " WHERE s.status IN ('active', 'in_grace_period', 'cancelled')"
        " GROUP BY o.currency ORDER BY o.currency"
    ),
    "subscription_renewals": (
        "SELECT currency, COUNT(*) AS n, SUM(amount) AS amount FROM orders"
        " WHERE subscription_id IS NOT NULL AND paid_at IS NOT NULL AND "
        + _PERIOD.format(col="paid_at")
        + " GROUP BY currency ORDER BY currency"
    ),
    "subscription_moves": (
        "SELECT SUM(CASE WHEN event = 'start' THEN 1 ELSE 0 END) AS started,"
        " SUM(CASE WHEN event = 'expire' AND from_state = 'cancelled' THEN 1 ELSE 0 END)"
        " AS voluntary_churn,"
        " SUM(CASE WHEN event = 'expire' AND from_state <> 'cancelled' THEN 1 ELSE 0 END)"
        " AS involuntary_churn,"
        " SUM(CASE WHEN event = 'revoke' THEN 1 ELSE 0 END) AS revoked,"
        " SUM(CASE WHEN to_state = 'in_grace_period' AND from_state <> 'in_grace_period'"
        " THEN 1 ELSE 0 END) AS entered_grace,"
        " SUM(CASE WHEN from_state = 'in_grace_period' AND to_state = 'active' THEN 1 ELSE 0"
        " END) AS grace_recoveries,"
        " SUM(CASE WHEN from_state = 'on_hold' AND to_state = 'active' THEN 1 ELSE 0 END)"
        " AS hold_recoveries"
        " FROM audit_events WHERE aggregate = 'subscription' AND " + _PERIOD.format(col="at")
    ),
}
"""Named aggregates of the analysis report's subscription section."""
