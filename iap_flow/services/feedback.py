"""Feedback: buyers rate and comment; staff answer and resolve within deadlines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import (
    RatingReason,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
)
from iap_flow.domain.roles import Actor, Role
from iap_flow.domain.transitions import TICKET
from iap_flow.ports import UnitOfWork
from iap_flow.services import inputs
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, must, text

BAD_RATING = 2
"""A rating this low or lower asks the buyer why (:class:`RatingReason`)."""


def _choice(enum_type: type[TicketPriority] | type[RatingReason], value: object, field: str) -> str:
    allowed = [m.value for m in enum_type]
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(
            f"{field} must be one of {', '.join(allowed)}, got {value!r}", field=field
        )
    return value


class Feedback:
    """Submit, answer, resolve and reopen feedback tickets."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def submit(
        self,
        actor: Actor,
        *,
        rating: int,
        body: str,
        order_id: str | None = None,
        idempotency_key: str | None = None,
        priority: TicketPriority | str = TicketPriority.NORMAL,
        reason: RatingReason | str | None = None,
    ) -> Ticket:
        """A buyer rates (1-5) and comments; staff must answer before the first-response
        deadline, whose time ``priority`` chooses.

        A rating of 2 or less asks why: give ``reason`` (a :class:`RatingReason`), or the
        buyer is asked for one (``ticket.reason_requested``) and gives it with :meth:`explain`.
        """
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "ticket.submit")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise InvalidInput(
                f"rating must be a whole number from 1 to 5, got {rating!r}", field="rating"
            )
        body = text(body, "body")
        if order_id is not None:
            order_id = ident(order_id, "order_id")
        level = TicketPriority(_choice(TicketPriority, priority, "priority"))
        why = None if reason is None else RatingReason(_choice(RatingReason, reason, "reason"))

        def run(tx: UnitOfWork, now: datetime) -> Ticket:
            if order_id is not None:
                order = must(tx.get_order(order_id), "order", order_id)
                check(actor, "ticket.submit", order.user_id)
            ticket = Ticket(
                id=ctx.ids.new("tkt", now),
                user_id=actor.id,
                order_id=order_id,
                rating=rating,
                body=body,
                status=TicketStatus.OPEN,
                created_at=now,
                updated_at=now,
                priority=level,
                reason=why,
            )
            data: dict[str, object] = {"rating": rating, "priority": level.value}
            if why is not None:
                data["reason"] = why.value
            ctx.created(tx, TICKET, ticket.id, "ticket.submit", actor, now, data, record=ticket)
            tx.insert_ticket(ticket)
            ctx.notify(
                tx,
                "ticket.opened",
                "support_agent",
                {
                    "ticket_id": ticket.id,
                    "rating": rating,
                    "user_id": actor.id,
                    "priority": level.value,
                    "reason": None if why is None else why.value,
                },
                now,
            )
            if rating <= BAD_RATING and why is None:
                reasons = [r.value for r in RatingReason]
                payload = {"ticket_id": ticket.id, "rating": rating, "reasons": reasons}
                ctx.notify(tx, "ticket.reason_requested", actor.id, payload, now)
            return ticket

        args = {
            "rating": rating,
            "body": body,
            "order_id": order_id,
            "priority": level.value,
            "reason": None if why is None else why.value,
        }
        return ctx.run(actor, "ticket.submit", args, key_or_none(idempotency_key), run)

    def answer(
        self, actor: Actor, ticket_id: str, *, body: str, idempotency_key: str | None = None
    ) -> Ticket:
        """Staff answer the buyer; the answer reaches them through the outbox."""
        return self._step(actor, ticket_id, "answer", text(body, "body"), idempotency_key)

    def resolve(
        self,
        actor: Actor,
        ticket_id: str,
        *,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Ticket:
        """The problem is solved: close the ticket."""
        body = None if note is None else text(note, "note")
        return self._step(actor, ticket_id, "resolve", body, idempotency_key)

    def reopen(
        self, actor: Actor, ticket_id: str, *, body: str, idempotency_key: str | None = None
    ) -> Ticket:
        """The buyer says the problem is not solved: staff must answer again."""
        return self._step(actor, ticket_id, "reopen", text(body, "body"), idempotency_key)

    def ask_buyer(
        self, actor: Actor, ticket_id: str, *, body: str, idempotency_key: str | None = None
    ) -> Ticket:
        """Staff ask the buyer for something: the targets' clock stops until the buyer replies."""
        return self._step(actor, ticket_id, "ask_buyer", text(body, "body"), idempotency_key)

    def buyer_reply(
        self, actor: Actor, ticket_id: str, *, body: str, idempotency_key: str | None = None
    ) -> Ticket:
        """The buyer answers staff's question: the clock runs again with the time it had left."""
        return self._step(actor, ticket_id, "buyer_reply", text(body, "body"), idempotency_key)

    def explain(
        self,
        actor: Actor,
        ticket_id: str,
        *,
        reason: RatingReason | str,
        idempotency_key: str | None = None,
    ) -> Ticket:
        """The buyer says why they rated 2 or less (once; audited, the state unchanged)."""
        ctx = self._ctx
        actor = ctx.actor(actor)
        check(actor, "ticket.explain")
        ticket_id = ident(ticket_id, "ticket_id")
        why = RatingReason(_choice(RatingReason, reason, "reason"))

        def run(tx: UnitOfWork, now: datetime) -> Ticket:
            ticket = must(tx.get_ticket(ticket_id), "ticket", ticket_id)
            check(actor, "ticket.explain", ticket.user_id)
            if ticket.rating > BAD_RATING:
                raise InvalidInput(
                    f"ticket {ticket.id} was rated {ticket.rating}: only a rating of "
                    f"{BAD_RATING} or less takes a reason",
                    field="reason",
                )
            if ticket.reason is not None:
                raise InvalidInput(
                    f"ticket {ticket.id} already has its reason ({ticket.reason})", field="reason"
                )
            ticket.reason = why
            ctx.amend(tx, ticket, "explain", actor, now, {"reason": why.value})
            payload = {"ticket_id": ticket.id, "reason": why.value, "rating": ticket.rating}
            ctx.notify(tx, "ticket.explained", "support_agent", payload, now)
            return ticket

        args = {"ticket_id": ticket_id, "reason": why.value}
        return ctx.run(actor, "ticket.explain", args, key_or_none(idempotency_key), run)

    def _step(
        self, actor: Actor, ticket_id: str, event: str, body: str | None, key: str | None
    ) -> Ticket:
        ctx = self._ctx
        actor = ctx.actor(actor)
        action = "ticket." + event
        check(actor, action)
        ticket_id = ident(ticket_id, "ticket_id")

        def run(tx: UnitOfWork, now: datetime) -> Ticket:
            ticket = must(tx.get_ticket(ticket_id), "ticket", ticket_id)
            # Whose ticket it is comes before its state: another buyer learns nothing of it.
            check(actor, action, ticket.user_id)
            target = TICKET.target(ticket.id, ticket.status, event)  # refuse before writing
            if event == "answer" and ticket.first_response_at is None:
                ticket.first_response_at = now
            elif event == "resolve":
                ticket.resolved_at = now
            elif event == "reopen":
                ticket.reopen_count += 1
                ticket.resolved_at = None
            if body is not None:
                message = TicketMessage(ticket.id, actor.id, actor.role, body, now)
                tx.add_message(message)
                ticket.messages.append(message)
            ctx.change(tx, ticket, event, actor, now)
            if event in ("answer", "resolve", "ask_buyer") and actor.role is not Role.BUYER:
                ctx.notify(
                    tx,
                    f"ticket.{target}",
                    ticket.user_id,
                    {"ticket_id": ticket.id, "message": body},
                    now,
                )
            elif event in ("reopen", "buyer_reply"):
                ctx.notify(
                    tx,
                    "ticket.reopened" if event == "reopen" else "ticket.buyer_replied",
                    "support_agent",
                    {"ticket_id": ticket.id, "message": body},
                    now,
                )
            return ticket

        return ctx.run(actor, action, {"ticket_id": ticket_id, "body": body}, key_or_none(key), run)

    def get(self, actor: Actor, ticket_id: str) -> Ticket:
        actor = self._ctx.actor(actor)
        check(actor, "ticket.read")
        ticket = must(
            self._ctx.store.get_ticket(ident(ticket_id, "ticket_id")), "ticket", ticket_id
        )
        check(actor, "ticket.read", ticket.user_id)
        return ticket

    def queue(
        self,
        actor: Actor,
        *,
        status: TicketStatus | str | Iterable[TicketStatus | str] = (
            TicketStatus.OPEN,
            TicketStatus.REOPENED,
        ),
        user_id: str | None = None,
        limit: int = 50,
    ) -> list[Ticket]:
        """Tickets by status, oldest first (awaiting an answer by default)."""
        actor = self._ctx.actor(actor)
        check(actor, "ticket.read")
        if actor.role is Role.BUYER:
            user_id = actor.id
        found = inputs.statuses(status, TicketStatus)
        return self._ctx.store.tickets(found, user_id, inputs.limit(limit, 1000))
