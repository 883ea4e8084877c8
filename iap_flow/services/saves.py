"""Writing a changed record: its version moves on, and the store writes it only if the stored
version is still the one it was read at (else :class:`~iap_flow.domain.errors.ConcurrentModification`)."""

from __future__ import annotations

from datetime import datetime

from iap_flow.domain.models import Order, RefundRequest, Ticket
from iap_flow.ports import UnitOfWork


def save_order(tx: UnitOfWork, order: Order, now: datetime) -> None:
    version = order.version
    order.version, order.updated_at = version + 1, now
    tx.update_order(order, version)


def save_refund(tx: UnitOfWork, refund: RefundRequest, now: datetime) -> None:
    version = refund.version
    refund.version, refund.updated_at = version + 1, now
    tx.update_refund(refund, version)


def save_ticket(tx: UnitOfWork, ticket: Ticket, now: datetime) -> None:
    version = ticket.version
    ticket.version, ticket.updated_at = version + 1, now
    tx.update_ticket(ticket, version)
