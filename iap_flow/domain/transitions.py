"""A plain transition table derived from each machine class, for the write path.

python-statemachine's engine costs far more per event than a whole SQLite write, so the
write path looks transitions up in these tables instead. They are *derived* from the machine
classes at import time, never written by hand, and a test proves that they agree with the
engine for every state and event.
"""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar, cast

import attrs
from statemachine import StateMachine

from iap_flow.domain.errors import TransitionNotAllowed
from iap_flow.domain.machines import MACHINES
from iap_flow.domain.models import OrderStatus, RefundStatus, SubscriptionStatus, TicketStatus

S = TypeVar("S", bound=enum.StrEnum)


@attrs.frozen
class TransitionTable(Generic[S]):
    """``(state, event) -> target`` for one machine, plus its states and events, as members
    of the record's status enum (a test proves the enum and the machine name the same states)."""

    aggregate: str
    status: type[S]
    initial: S
    states: tuple[S, ...]
    events: tuple[str, ...]
    finals: frozenset[S]
    targets: dict[tuple[str, str], S]

    @classmethod
    def from_machine(
        cls, aggregate: str, machine: type[StateMachine], status: type[S]
    ) -> TransitionTable[S]:
        targets: dict[tuple[str, str], S] = {}
        initial: S | None = None
        for state in machine.states:
            if state.initial:
                initial = status(state.id)
            for transition in state.transitions:
                for event in transition.events:
                    if list(transition.cond):  # a guard would need the engine on the write path
                        raise TypeError(f"{aggregate}.{event.id} has a condition; not supported")
                    targets.setdefault((state.id, event.id), status(transition.target.id))
        if initial is None:
            raise TypeError(f"the {aggregate} machine has no initial state")
        return cls(
            aggregate=aggregate,
            status=status,
            initial=initial,
            states=tuple(status(s.id) for s in machine.states),
            # `events` is a class-level list here; typeshed-wise it is an instance method.
            events=tuple(e.id for e in cast(Any, machine).events),
            finals=frozenset(status(s.id) for s in machine.states if s.final),
            targets=targets,
        )

    def target(self, id: str, state: str, event: str) -> S:
        """The state ``event`` leads to from ``state``; raises if it is not allowed."""
        try:
            return self.targets[(state, event)]
        except KeyError:
            raise TransitionNotAllowed(
                kind=self.aggregate, id=id, state=str(state), event=event
            ) from None

    def allowed_events(self, state: str) -> list[str]:
        """Events that may fire from ``state``, in the machine's order."""
        return [e for e in self.events if (state, e) in self.targets]


ORDER = TransitionTable.from_machine("order", MACHINES["order"], OrderStatus)
REFUND = TransitionTable.from_machine("refund", MACHINES["refund"], RefundStatus)
TICKET = TransitionTable.from_machine("ticket", MACHINES["ticket"], TicketStatus)
SUBSCRIPTION = TransitionTable.from_machine(
    "subscription", MACHINES["subscription"], SubscriptionStatus
)
TABLES: dict[str, TransitionTable[Any]] = {
    t.aggregate: t for t in (ORDER, REFUND, TICKET, SUBSCRIPTION)
}
