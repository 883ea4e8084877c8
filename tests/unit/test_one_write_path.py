"""One way to change state: only ``Context.change`` / ``Context.amend`` write a record.

A service that saved a record itself (bumping its version, setting its status from a map)
would skip the permission check, the audit event or the deadlines; this test finds one.
"""

from __future__ import annotations

import re
from pathlib import Path

import iap_flow
from iap_flow.domain.models import OrderStatus
from iap_flow.domain.transitions import ORDER, REFUND, SUBSCRIPTION, TICKET

SERVICES = Path(iap_flow.__file__).parent / "services"
WRITES = re.compile(
    r"\.update_(order|refund|ticket|subscription)\(|\.version\s*[+]?=|\.status\s*=[^=]"
)


def test_only_the_context_writes_records() -> None:
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(SERVICES.glob("*.py"))
        if path.name != "context.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WRITES.search(line)
    ]
    assert offenders == []


def test_the_transition_tables_hand_back_the_records_status_enum() -> None:
    assert ORDER.target("ord_1", "pending_payment", "pay") is OrderStatus.PAID
    for table in (ORDER, REFUND, TICKET, SUBSCRIPTION):
        assert all(isinstance(t, table.status) for t in table.targets.values())
        assert isinstance(table.initial, table.status)
