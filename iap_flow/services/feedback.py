"""Feedback: buyers rate and comment; staff answer and resolve within deadlines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import Ticket, TicketMessage, TicketStatus
from iap_flow.domain.roles import Actor, Role
from iap_flow.domain.transitions import TICKET
from iap_flow.ports import UnitOfWork
from iap_flow.services.context import Context
from iap_flow.services.inputs import check, ident, key_or_none, must, names, text

_STATUSES = frozenset(s.value for s in TicketStatus)


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
    ) -> Ticket:
        """A buyer rates (1-5) and comments; staff must answer before the first-response deadline."""
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
            )
            tx.insert_ticket(ticket)
            ctx.created(tx, TICKET, ticket.id, "ticket.submit", actor, now, {"rating": rating})
            ctx.notify(
                tx,
                "ticket.opened",
                "support_agent",
                {"ticket_id": ticket.id, "rating": rating, "user_id": actor.id},
                now,
            )
            return ticket

        args = {"rating": rating, "body": body, "order_id": order_id}
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
            if event in ("answer", "resolve") and actor.role is not Role.BUYER:
                ctx.notify(
                    tx,
                    f"ticket.{target}",
                    ticket.user_id,
                    {"ticket_id": ticket.id, "message": body},
                    now,
                )
            elif event == "reopen":
                ctx.notify(
                    tx,
                    "ticket.reopened",
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
        items = names(status, "status")
        for item in items:
            if item not in _STATUSES:
                raise InvalidInput(f"unknown ticket status {item!r}", field="status")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an int from 1 to 1000", field="limit")
        return self._ctx.store.tickets([str(i) for i in items], user_id, limit)
