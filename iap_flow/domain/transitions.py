"""A plain transition table derived from each machine class, for the write path.

python-statemachine's engine costs far more per event than a whole SQLite write, so the
write path looks transitions up in these tables instead. They are *derived* from the machine
classes at import time, never written by hand, and a test proves that they agree with the
engine for every state and event.
"""

from __future__ import annotations

from typing import Any, cast

import attrs
from statemachine import StateMachine

from iap_flow.domain.errors import TransitionNotAllowed
from iap_flow.domain.machines import MACHINES


@attrs.frozen
class TransitionTable:
    """``(state, event) -> target`` for one machine, plus its states and events."""

    aggregate: str
    initial: str
    states: tuple[str, ...]
    events: tuple[str, ...]
    finals: frozenset[str]
    targets: dict[tuple[str, str], str]

    @classmethod
    def from_machine(cls, aggregate: str, machine: type[StateMachine]) -> TransitionTable:
        targets: dict[tuple[str, str], str] = {}
        initial = ""
        for state in machine.states:
            if state.initial:
                initial = state.id
            for transition in state.transitions:
                for event in transition.events:
                    if list(transition.cond):  # a guard would need the engine on the write path
                        raise TypeError(f"{aggregate}.{event.id} has a condition; not supported")
                    targets.setdefault((state.id, event.id), transition.target.id)
        return cls(
            aggregate=aggregate,
            initial=initial,
            states=tuple(s.id for s in machine.states),
            # `events` is a class-level list here; typeshed-wise it is an instance method.
            events=tuple(e.id for e in cast(Any, machine).events),
            finals=frozenset(s.id for s in machine.states if s.final),
            targets=targets,
        )

    def target(self, id: str, state: str, event: str) -> str:
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


TABLES: dict[str, TransitionTable] = {
    name: TransitionTable.from_machine(name, machine) for name, machine in MACHINES.items()
}
ORDER = TABLES["order"]
REFUND = TABLES["refund"]
TICKET = TABLES["ticket"]
