"""Feedback tickets: a buyer rates and writes; staff answer and resolve; the buyer may reopen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from iap_flow import SYSTEM, DeadlineKind, TicketStatus, TransitionNotAllowed


def test_submit_opens_a_ticket_with_two_deadlines_and_tells_support(world: Any) -> None:
    order = world.order()
    ticket = world.flow.feedback.submit(
        world.buyer, rating=2, body="  gems missing  ", order_id=order.id
    )
    assert ticket.id.startswith("tkt_")
    assert (ticket.status, ticket.rating, ticket.body, ticket.order_id, ticket.user_id) == (
        TicketStatus.OPEN,
        2,
        "gems missing",
        order.id,
        "u1",
    )
    due = {d.kind: d.due_at for d in world.flow.store.pending_deadlines(ticket.id)}
    assert due == {
        DeadlineKind.TICKET_FIRST_RESPONSE: world.start + timedelta(hours=4),
        DeadlineKind.TICKET_RESOLUTION: world.start + timedelta(hours=72),
    }
    note, asked = world.notifier.sent[-2:]
    assert (note.topic, note.recipient, note.payload["rating"], note.payload["reason"]) == (
        "ticket.opened",
        "support_agent",
        2,
        None,
    )
    # a rating of 2 or less with no reason: the buyer is asked why
    assert (asked.topic, asked.recipient, asked.payload["ticket_id"]) == (
        "ticket.reason_requested",
        "u1",
        ticket.id,
    )
    assert "slow_delivery" in asked.payload["reasons"]


def test_answer_resolve_reopen_with_messages_and_audit(world: Any) -> None:
    fb = world.flow.feedback
    ticket = fb.submit(world.buyer, rating=1, body="crashes on launch")
    world.advance(hours=1)
    answered = fb.answer(world.agent, ticket.id, body="Which device?")
    assert answered.status is TicketStatus.ANSWERED
    assert answered.first_response_at == world.start + timedelta(hours=1)
    assert {d.kind for d in world.flow.store.pending_deadlines(ticket.id)} == {
        DeadlineKind.TICKET_RESOLUTION
    }
    world.advance(hours=1)
    again = fb.answer(world.lead, ticket.id, body="We shipped a fix")
    assert again.first_response_at == answered.first_response_at  # the first one counts
    resolved = fb.resolve(world.buyer, ticket.id, note="works now")
    assert (resolved.status, resolved.resolved_at) == (TicketStatus.RESOLVED, world.clock.now())
    assert world.flow.store.pending_deadlines(ticket.id) == []
    reopened = fb.reopen(world.buyer, ticket.id, body="crashes again")
    assert (reopened.status, reopened.reopen_count, reopened.resolved_at) == (
        TicketStatus.REOPENED,
        1,
        None,
    )
    assert len(world.flow.store.pending_deadlines(ticket.id)) == 2
    stored = fb.get(world.buyer, ticket.id)
    assert stored == reopened
    assert [(m.author_id, m.role, m.body) for m in stored.messages] == [
        ("agent_1", "support_agent", "Which device?"),
        ("lead_1", "support_lead", "We shipped a fix"),
        ("u1", "buyer", "works now"),
        ("u1", "buyer", "crashes again"),
    ]
    trail = world.flow.history(SYSTEM, ticket.id)
    assert [(e.event, e.from_state, e.to_state) for e in trail] == [
        ("submit", None, "open"),
        ("answer", "open", "answered"),
        ("answer", "answered", "answered"),
        ("resolve", "answered", "resolved"),
        ("reopen", "resolved", "reopened"),
    ]


def test_staff_answers_reach_the_buyer_and_reopenings_reach_support(world: Any) -> None:
    ticket = world.ticket(upto="reopened")
    sent = [
        (n.topic, n.recipient)
        for n in world.notifier.sent
        if n.payload.get("ticket_id") == ticket.id
    ]
    assert sent == [
        ("ticket.opened", "support_agent"),
        ("ticket.answered", "u1"),
        ("ticket.resolved", "u1"),
        ("ticket.reopened", "support_agent"),
    ]


def test_a_buyer_resolving_their_own_ticket_is_not_told_about_it(world: Any) -> None:
    ticket = world.ticket(upto="answered")
    before = len(world.notifier.sent)
    world.flow.feedback.resolve(world.buyer, ticket.id)
    assert len(world.notifier.sent) == before


def test_an_open_ticket_can_be_resolved_without_an_answer(world: Any) -> None:
    ticket = world.ticket()
    assert world.flow.feedback.resolve(world.agent, ticket.id).status is TicketStatus.RESOLVED


@pytest.mark.parametrize(
    ("upto", "event"), [("open", "reopen"), ("resolved", "answer"), ("resolved", "resolve")]
)
def test_steps_the_machine_does_not_allow(world: Any, upto: str, event: str) -> None:
    ticket = world.ticket(upto=upto)
    before = world.snapshot()
    calls = {
        "reopen": lambda: world.flow.feedback.reopen(world.buyer, ticket.id, body="again"),
        "answer": lambda: world.flow.feedback.answer(world.agent, ticket.id, body="hi"),
        "resolve": lambda: world.flow.feedback.resolve(world.agent, ticket.id),
    }
    with pytest.raises(TransitionNotAllowed, match=f"cannot {event} ticket"):
        calls[event]()
    assert world.snapshot() == before


def test_queues_show_tickets_waiting_for_an_answer_oldest_first(world: Any) -> None:
    first = world.ticket()
    world.advance(minutes=5)
    answered = world.ticket(upto="answered")
    world.advance(minutes=5)
    reopened = world.ticket(upto="reopened")
    waiting = world.flow.feedback.queue(world.agent)
    assert [t.id for t in waiting] == [first.id, reopened.id]
    assert [t.id for t in world.flow.feedback.queue(world.agent, status="answered")] == [
        answered.id
    ]


@pytest.mark.parametrize("upto", ["open", "answered", "resolved"])
def test_another_buyer_is_refused_whatever_state_the_ticket_is_in(world: Any, upto: str) -> None:
    """Ownership is checked before the state: another buyer's reopen of an open ticket is a
    permission refusal, not a "cannot reopen" that would tell them the ticket's state."""
    from iap_flow import PermissionDenied

    ticket = world.ticket(upto=upto)
    before = world.snapshot()
    with pytest.raises(PermissionDenied):
        world.flow.feedback.reopen(world.other_buyer, ticket.id, body="not mine")
    assert world.snapshot() == before
