"""The deadline rules table is consistent with the machines, the permissions and the policy.

The write path opens and closes deadlines from this table and the sweep fires ``on_due``;
a rule that names a state or event the machine does not have would fail only at run time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from iap_flow import DeadlineKind, Policy
from iap_flow.domain.deadlines import BY_KIND, RULES, closed_by, opened_by
from iap_flow.domain.roles import PERMISSIONS
from iap_flow.domain.transitions import TABLES

RESUBMITTED = {(DeadlineKind.REFUND_RETRY, "submitted")}
"""A payout left unconfirmed (a crash after submitting) is sent again with the same key and
no state change: execute() handles it without firing an event."""


def test_every_kind_has_one_rule_and_a_policy_window() -> None:
    assert [rule.kind for rule in RULES] == list(BY_KIND)
    assert set(BY_KIND) == set(DeadlineKind)
    policy = Policy()
    for kind in DeadlineKind:
        assert policy.window(kind) > timedelta(0)


@pytest.mark.parametrize("rule", RULES, ids=[r.kind.value for r in RULES])
def test_rules_name_real_states_events_and_actions(rule: object) -> None:
    table = TABLES[rule.aggregate]  # type: ignore[attr-defined]
    assert rule.while_in <= set(table.states)  # type: ignore[attr-defined]
    if rule.calls_platform:  # type: ignore[attr-defined]
        # the sweep calls the platform after its batch; the call audits itself
        assert rule.on_due in ("answer_platform", "acknowledge")  # type: ignore[attr-defined]
    for state in rule.while_in:  # type: ignore[attr-defined]
        if (rule.kind, state) in RESUBMITTED or rule.calls_platform:  # type: ignore[attr-defined]  # type: ignore[attr-defined]
            continue
        # the sweep fires on_due from whatever state the record is in while it stands
        assert rule.on_due in table.allowed_events(state), (rule, state)  # type: ignore[attr-defined]
    for action in rule.started_by:  # type: ignore[attr-defined]
        assert action in PERMISSIONS
        assert action.startswith(rule.aggregate + ".")  # type: ignore[attr-defined]
        event = action.split(".", 1)[1]
        if event in table.events:
            # a deadline opened by an event stands in the state that event leads to
            assert any(
                table.targets.get((s, event)) in rule.while_in
                for s in table.states  # type: ignore[attr-defined]
            )
        else:
            # a creation action: the record starts in its machine's initial state
            assert table.initial in rule.while_in  # type: ignore[attr-defined]


def test_design_defaults() -> None:
    policy = Policy()
    assert policy.window(DeadlineKind.ORDER_PAYMENT) == timedelta(minutes=30)
    assert policy.window(DeadlineKind.REFUND_REVIEW) == timedelta(hours=24)
    assert policy.window(DeadlineKind.TICKET_FIRST_RESPONSE) == timedelta(hours=4)
    assert policy.window(DeadlineKind.TICKET_RESOLUTION) == timedelta(hours=72)


def test_opened_by_follows_started_by() -> None:
    assert [r.kind for r in opened_by("order.place")] == [DeadlineKind.ORDER_PAYMENT]
    assert {r.kind for r in opened_by("ticket.submit")} == {
        DeadlineKind.TICKET_FIRST_RESPONSE,
        DeadlineKind.TICKET_RESOLUTION,
    }
    assert [r.kind for r in opened_by("order.deliver")] == [DeadlineKind.PURCHASE_ACKNOWLEDGE]
    assert opened_by("order.complete") == ()


@pytest.mark.parametrize(
    ("aggregate", "src", "dst", "closed"),
    [
        ("order", "pending_payment", "paid", {DeadlineKind.ORDER_PAYMENT}),
        ("order", "pending_payment", "expired", {DeadlineKind.ORDER_PAYMENT}),
        ("order", "paid", "delivered", {DeadlineKind.ORDER_DELIVERY}),
        ("order", "awaiting_delivery", "delivered", {DeadlineKind.ORDER_DELIVERY}),
        ("order", "paid", "awaiting_delivery", set()),
        ("order", "delivered", "completed", set()),  # still to acknowledge
        ("order", "completed", "refunded", {DeadlineKind.PURCHASE_ACKNOWLEDGE}),
        ("refund", "in_review", "approved", {DeadlineKind.REFUND_REVIEW}),
        ("refund", "in_review", "in_review", set()),  # an escalation keeps it open
        # the payout retry stays open; a platform's review is not answered once paid out
        ("refund", "approved", "submitted", {DeadlineKind.REVIEW_ANSWER}),
        ("refund", "approved", "rejected", {DeadlineKind.REFUND_RETRY}),  # a platform declined
        ("refund", "submitted", "refunded", {DeadlineKind.REFUND_RETRY}),
        ("refund", "submitted", "failed", set()),
        ("ticket", "open", "answered", {DeadlineKind.TICKET_FIRST_RESPONSE}),
        (
            "ticket",
            "open",
            "resolved",
            {
                DeadlineKind.TICKET_FIRST_RESPONSE,
                DeadlineKind.TICKET_RESOLUTION,
                DeadlineKind.TICKET_ESCALATION,
            },
        ),
        (
            "ticket",
            "answered",
            "resolved",
            {DeadlineKind.TICKET_RESOLUTION, DeadlineKind.TICKET_ESCALATION},
        ),
        ("ticket", "answered", "answered", set()),
        # waiting on the buyer stops every ticket clock; the reply starts none by itself
        (
            "ticket",
            "open",
            "waiting_on_buyer",
            {
                DeadlineKind.TICKET_FIRST_RESPONSE,
                DeadlineKind.TICKET_RESOLUTION,
                DeadlineKind.TICKET_ESCALATION,
            },
        ),
        ("ticket", "waiting_on_buyer", "reopened", set()),
    ],
)
def test_leaving_the_states_closes_the_deadline(
    aggregate: str, src: str, dst: str, closed: set[DeadlineKind]
) -> None:
    assert set(closed_by(aggregate, src, dst)) == closed


def test_only_deadlines_with_an_owner_to_remind_have_reminders() -> None:
    reminded = {rule.kind for rule in RULES if rule.reminds}
    assert reminded == {
        DeadlineKind.ORDER_DELIVERY,
        DeadlineKind.REFUND_REVIEW,
        DeadlineKind.TICKET_FIRST_RESPONSE,
        DeadlineKind.TICKET_RESOLUTION,
    }
