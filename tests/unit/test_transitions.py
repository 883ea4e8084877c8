"""The derived transition table agrees with python-statemachine's engine, state by event.

The write path never runs the engine (too slow per event); it looks transitions up in
:mod:`iap_flow.domain.transitions`. These tests are what lets the machine classes stay the single
source of truth: for every machine, every state and every event, the table answers exactly
what the engine does when bound to a record in that state.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed as EngineRefused

from iap_flow import OrderStatus, RefundStatus, TicketStatus, TransitionNotAllowed
from iap_flow.domain.machines import MACHINES
from iap_flow.domain.transitions import TABLES


class Record:
    """The smallest model a machine binds to: a ``status`` field, preset like a stored row."""

    def __init__(self, status: str) -> None:
        self.status = status


def engine_target(machine: type[StateMachine], state: str, event: str) -> str | None:
    """What the real engine does: the state ``event`` leads to from ``state``, or None."""
    record = Record(state)
    sm = machine(record, state_field="status")
    assert record.status == state  # binding to a stored row must not reset it
    try:
        sm.send(event)
    except EngineRefused:
        assert record.status == state
        return None
    return record.status


CASES = [
    (name, state.id, event.id)
    for name, machine in MACHINES.items()
    for state in machine.states
    for event in machine.events  # type: ignore[attr-defined]
]


def test_every_machine_state_and_event_is_covered() -> None:
    for name, machine in MACHINES.items():
        table = TABLES[name]
        assert set(table.states) == {s.id for s in machine.states}
        assert set(table.events) == {e.id for e in machine.events}  # type: ignore[attr-defined]
        assert table.initial == machine.initial_state.id  # type: ignore[attr-defined]
        assert table.finals == {s.id for s in machine.final_states}  # type: ignore[attr-defined]
    assert len(CASES) == sum(len(t.states) * len(t.events) for t in TABLES.values())


@pytest.mark.parametrize(("aggregate", "state", "event"), CASES)
def test_table_agrees_with_engine(aggregate: str, state: str, event: str) -> None:
    table = TABLES[aggregate]
    expected = engine_target(MACHINES[aggregate], state, event)
    if expected is None:
        with pytest.raises(TransitionNotAllowed) as refused:
            table.target("x_1", state, event)
        assert (refused.value.kind, refused.value.state, refused.value.event) == (
            aggregate,
            state,
            event,
        )
        assert event not in table.allowed_events(state)
    else:
        assert table.target("x_1", state, event) == expected
        assert event in table.allowed_events(state)


@pytest.mark.parametrize(
    ("aggregate", "statuses"),
    [("order", OrderStatus), ("refund", RefundStatus), ("ticket", TicketStatus)],
)
def test_status_enums_name_exactly_the_machine_states(aggregate: str, statuses: Any) -> None:
    assert {s.value for s in statuses} == set(TABLES[aggregate].states)


def test_final_states_allow_no_event_in_the_table() -> None:
    for table in TABLES.values():
        for final in table.finals:
            assert table.allowed_events(final) == []


def test_refusal_message_names_record_state_and_event() -> None:
    with pytest.raises(TransitionNotAllowed, match="cannot pay order ord_9: it is refunded"):
        TABLES["order"].target("ord_9", "refunded", "pay")


@pytest.mark.parametrize("aggregate", sorted(MACHINES))
@given(data=st.data())
def test_random_event_sequences_follow_the_engine(aggregate: str, data: st.DataObject) -> None:
    """One engine instance driven through a random sequence of events (allowed or not)
    and the table walked alongside it end in the same state at every step."""
    machine, table = MACHINES[aggregate], TABLES[aggregate]
    events = data.draw(st.lists(st.sampled_from(table.events), max_size=25))
    record = Record(table.initial)
    sm = machine(record, state_field="status")
    state = table.initial
    for event in events:
        try:
            sm.send(event)
            engine_ok = True
        except EngineRefused:
            engine_ok = False
        try:
            state = table.target("x_1", state, event)
            table_ok = True
        except TransitionNotAllowed:
            table_ok = False
        assert (engine_ok, record.status) == (table_ok, state), (events, event)
