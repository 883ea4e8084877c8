"""Roles and the one permission table every entry point consults.

A role grants *actions*: every machine event (``"refund.approve"``) and the commands that
create or read records (``"order.place"``, ``"report.read"``). A test proves every machine
event has a row here, so a new event cannot ship without a decision on who may fire it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from iap_flow.domain.errors import InvalidInput, PermissionDenied


class Role(enum.StrEnum):
    BUYER = "buyer"
    PRODUCT_MANAGER = "product_manager"
    SUPPORT_AGENT = "support_agent"
    SUPPORT_LEAD = "support_lead"
    DATA_ANALYST = "data_analyst"
    DEVELOPER = "developer"
    SYSTEM = "system"


MAX_ACTOR_ID = 128


def _check_actor_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("an actor needs a non-empty id", field="actor_id")
    if len(value) > MAX_ACTOR_ID or not value.isprintable():
        raise InvalidInput(
            f"an actor id is at most {MAX_ACTOR_ID} printable characters on one line",
            field="actor_id",
        )


def _role(value: object) -> Role:
    if isinstance(value, str) and value in _ROLES:
        return Role(value)
    raise InvalidInput(f"role must be one of {', '.join(Role)}, got {value!r}", field="role")


_ROLES = frozenset(r.value for r in Role)


@attrs.frozen
class Actor:
    """Who is acting, and in which role.

    >>> Actor.buyer("u_42")
    Actor(id='u_42', role=<Role.BUYER: 'buyer'>)
    """

    id: str = attrs.field(validator=_check_actor_id)
    role: Role = attrs.field(converter=_role)

    @classmethod
    def buyer(cls, user_id: str) -> Actor:
        return cls(user_id, Role.BUYER)

    @classmethod
    def agent(cls, staff_id: str) -> Actor:
        return cls(staff_id, Role.SUPPORT_AGENT)

    @classmethod
    def lead(cls, staff_id: str) -> Actor:
        return cls(staff_id, Role.SUPPORT_LEAD)


SYSTEM = Actor("system", Role.SYSTEM)
"""The actor for payment-platform events, deadline sweeps and deliveries."""

B, PM, AG, LD, DA, DEV, SYS = (
    Role.BUYER,
    Role.PRODUCT_MANAGER,
    Role.SUPPORT_AGENT,
    Role.SUPPORT_LEAD,
    Role.DATA_ANALYST,
    Role.DEVELOPER,
    Role.SYSTEM,
)

PERMISSIONS: Mapping[str, frozenset[Role]] = {
    # catalogue
    "product.create": frozenset({PM}),
    "product.update": frozenset({PM}),
    # orders: creation and the order machine's events
    "order.place": frozenset({B}),
    "order.renew": frozenset({SYS}),
    "order.record": frozenset({SYS}),  # a purchase the platform charged on its own
    "order.pay": frozenset({B, SYS}),
    "order.fail_payment": frozenset({SYS}),
    "order.cancel": frozenset({B, AG, LD, SYS}),
    "order.expire": frozenset({SYS}),
    "order.hold_delivery": frozenset({SYS, DEV}),
    "order.deliver": frozenset({SYS, DEV}),
    "order.complete": frozenset({B, SYS}),
    "order.refund": frozenset({SYS}),
    "order.partial_refund": frozenset({SYS}),
    "order.escalate": frozenset({SYS}),  # paid, not delivered in time
    # refunds: creation and the refund machine's events
    "refund.request": frozenset({B, SYS}),
    "refund.open_review": frozenset({SYS}),
    "refund.escalate": frozenset({SYS}),
    # the system decides a platform's review no one decided: the policy answer
    "refund.approve": frozenset({AG, LD, SYS}),
    "refund.reject": frozenset({AG, LD, SYS}),
    "refund.withdraw": frozenset({B}),
    "refund.submit": frozenset({SYS, LD, DEV}),
    "refund.confirm": frozenset({SYS}),
    "refund.fail": frozenset({SYS}),
    "refund.platform_refund": frozenset({SYS}),
    "refund.platform_decline": frozenset({SYS}),
    "refund.answer_platform": frozenset({SYS, LD, DEV}),  # send (again) staff's decision
    "refund.platform_reversal": frozenset({SYS}),  # audit only: the refund stays refunded
    # feedback tickets: creation and the ticket machine's events
    "ticket.submit": frozenset({B}),
    "ticket.answer": frozenset({AG, LD}),
    "ticket.resolve": frozenset({B, AG, LD}),
    "ticket.reopen": frozenset({B}),
    "ticket.ask_buyer": frozenset({AG, LD}),
    "ticket.buyer_reply": frozenset({B}),
    "ticket.explain": frozenset({B}),  # why a bad rating (audit only)
    "ticket.escalate": frozenset({SYS}),
    # subscriptions: started by a paid order, then driven by the store's notifications
    "subscription.start": frozenset({SYS}),  # a paid subscription order starts it
    "subscription.renew": frozenset({SYS}),  # a paid renewal order extends it
    "subscription.recover": frozenset({SYS}),
    "subscription.enter_grace": frozenset({SYS}),
    "subscription.hold": frozenset({SYS}),
    "subscription.pause": frozenset({SYS}),
    "subscription.resume": frozenset({SYS}),
    "subscription.cancel": frozenset({SYS}),
    "subscription.uncancel": frozenset({SYS}),
    "subscription.expire": frozenset({SYS}),
    "subscription.revoke": frozenset({SYS}),
    "subscription.change_plan": frozenset({SYS}),
    "subscription.extend": frozenset({SYS}),  # the store moved the period end, no charge
    "subscription.read": frozenset({B, AG, LD, DA, DEV, SYS}),
    "entitlement.read": frozenset({B, AG, LD, DA, DEV, SYS}),
    # reads and maintenance
    "order.read": frozenset({B, AG, LD, DA, DEV, SYS}),
    "refund.read": frozenset({B, AG, LD, DA, DEV, SYS}),
    "ticket.read": frozenset({B, AG, LD, DA, DEV, SYS}),
    "audit.read": frozenset({B, AG, LD, DEV, SYS}),  # buyers: their own records' trail
    "report.read": frozenset({PM, LD, DA, DEV}),
    "sweep.run": frozenset({SYS, DEV}),
    "outbox.deliver": frozenset({SYS, DEV}),
    "operations.read": frozenset({AG, LD, DEV, SYS}),  # the outbox backlog, every open deadline
    "event.remember": frozenset({SYS, DEV}),  # an inbound event processed, once per store
    "order.acknowledge": frozenset({SYS, LD, DEV}),  # a delivery told to the platform
    "reconcile.run": frozenset({SYS, LD, DEV}),  # what the platforms say, matched with ours
}
"""Action -> roles that may perform it. Buyers are further limited to their own records."""

OWN_RECORDS_ONLY: frozenset[Role] = frozenset({Role.BUYER})


def check(actor: Actor, action: str, *, owner_id: str | None = None) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may perform ``action``.

    >>> check(Actor.buyer("u_1"), "order.place")
    >>> check(Actor.buyer("u_1"), "refund.approve")
    Traceback (most recent call last):
    ...
    iap_flow.domain.errors.PermissionDenied: buyer u_1 may not refund.approve
    """
    roles = PERMISSIONS.get(action)
    if roles is None:
        raise PermissionDenied(
            f"unknown action {action}", actor_id=actor.id, role=actor.role, action=action
        )
    if actor.role not in roles:
        raise PermissionDenied(
            f"{actor.role} {actor.id} may not {action}",
            actor_id=actor.id,
            role=actor.role,
            action=action,
        )
    if owner_id is not None and actor.role in OWN_RECORDS_ONLY and owner_id != actor.id:
        raise PermissionDenied(
            f"{actor.role} {actor.id} may only {action} on their own records",
            actor_id=actor.id,
            role=actor.role,
            action=action,
        )


def roles_for(action: str) -> frozenset[Role]:
    return PERMISSIONS.get(action, frozenset())
