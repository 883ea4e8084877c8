"""Every script in ``examples/`` runs as a user would run it, and says what it should.

Each example is run as a subprocess with this interpreter; the test checks the exit code and
the lines that tell the story's outcome (final statuses, who was notified, money moved).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED: dict[str, list[str]] = {
    "consumable_purchase.py": [
        "gems_100: 100 gems, 1.99 USD (consumable)",
        "user_42 tapped buy on gems_100: order pending_payment, 1.99 USD to pay",
        "a double tap with the same key returned the same order: True",
        "the sandbox platform took the money: order paid",
        "buyer notified: order.paid (100 gems, 199 cents)",
        "gems granted: order delivered",
        "next day, gems_550 with a declined card: order payment_failed",
        "user_42's completed orders: ['gems_100']",
        "user_42's orders placed on 2 March: ['gems_100 completed']",
        "page 1: gems_550 payment_failed; page 2: gems_100",
        "complete: delivered -> completed by buyer user_42",
        "final status: completed",
    ],
    "subscription_renewals.py": [
        "first order delivered",
        "Feb: renewal paid, 4.99 USD, linked to the first order: True",
        "Mar: renewal payment_failed, 4.99 USD, linked to the first order: True",
        "user_7 notified: order.payment_failed (card declined)",
        "Apr: renewal paid, 4.99 USD, linked to the first order: True",
        "Apr again with the same key: the same renewal order: True",
        "16 Mar: renewal, payment_failed",
        "money moved: 3 charges of 4.99 USD",
    ],
    "subscription_lifecycle.py": [
        "15 Jan subscribed: active; user_8 has pro_monthly until 15 Feb (active);"
        " told entitlement.granted",
        "15 Feb renewed: user_8 has pro_monthly until 15 Mar (active)",
        "15 Mar renewal declined: in_grace_period; user_8 has pro_monthly until 22 Mar"
        " (in_grace_period)",
        "23 Mar grace over: on_hold; user_8 has nothing; told",
        "23 Mar recovered: user_8 has pro_monthly until 23 Apr (active); told entitlement.granted",
        "23 Mar auto-renew off: cancelled; user_8 has pro_monthly until 23 Apr (cancelled)",
        "24 Apr past the period end: expired; user_8 has nothing",
        "on 20 Mar user_8 had: [('pro_monthly', 'in_grace_period')]",
        "24 Apr renewal refused before any charge: cannot renew subscription",
        "25 Apr resubscribed: active; user_8 has pro_monthly until 25 May (active)",
        "25 Apr refunded: subscription revoked; user_8 has nothing; told entitlement.revoked",
        "the subscription's trail: start -> renew -> enter_grace -> hold -> recover -> cancel"
        " -> expire -> renew -> revoke",
    ],
    "refund_approved_and_rejected.py": [
        "agent_bo approved it: refund refunded, order refunded",
        "sandbox ledger: 1 refund of 1.99 USD for this order",
        "user_9 notified: refund.succeeded",
        "agent_di was too late: AlreadyDecided, decided by agent_bo, refunded",
        "second request rejected: refund rejected, order delivered",
        "user_9 notified: refund.rejected: The gems were already spent",
        "agent_bo may not approve 79.99 USD: ApprovalLimitExceeded (limit 50.00 USD)",
        "lead_cy approved it: refund refunded, order refunded",
        "approve: in_review -> approved by support_lead lead_cy",
        "money paid back by the platform: 2 refunds for 2 orders",
    ],
    "refund_deadline_escalation.py": [
        "a refund review is due 24 h after the request",
        # the coins never arrived: the paid, undelivered order is a lead's after 1 h
        "01 Jun 20:00 sweep: 0 reminded, 1 escalated",
        "deadline.escalated -> support_lead (order_delivery)",
        "02 Jun 02:00 sweep: 1 reminded, 0 escalated",
        "deadline.reminder -> support_agent (refund_review)",
        "02 Jun 09:00 sweep: 0 reminded, 1 escalated",
        "deadline.escalated -> support_lead (refund_review)",
        "02 Jun 10:00 sweep: 0 reminded, 0 escalated",
        "refund in_review, escalated: True",
        "escalate: in_review -> in_review by system system (refund_review deadline)",
        "lead_cy approves it: refund refunded",
        "deadline breaches in the report: {'refund_review': 1}",
    ],
    "feedback_answered.py": [
        "user_5 rated 2/5: ticket open; support notified: ticket.opened",
        "user_5 notified: ticket.answered",
        "user_5 reopened it: ticket reopened; support notified: ticket.reopened",
        "agent_bo answered again: ticket answered",
        "user_5 resolved it: ticket resolved, reopened 1 time(s)",
        "sweep escalated 1; ticket open",
        "escalated: True; support_lead notified: deadline.escalated",
        "escalate: open -> open by system system",
        "lead_cy answered it: ticket answered",
        "deadline breaches: {'ticket_first_response': 1}",
    ],
}


def run(script: Path) -> subprocess.CompletedProcess[str]:
    """Run one example from a neutral directory, as ``python examples/<name>.py`` would."""
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent.parent,
        check=False,
    )


def test_every_example_is_checked() -> None:
    """A new example needs its expected lines here, so it cannot rot unnoticed."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_tells_its_story(name: str) -> None:
    result = run(EXAMPLES / name)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    missing = [line for line in EXPECTED[name] if line not in result.stdout]
    assert not missing, f"{name} did not print {missing}; it printed:\n{result.stdout}"


def test_examples_are_deterministic() -> None:
    """Seeded ids and a manual clock: the same script prints the same thing every time."""
    script = EXAMPLES / "refund_approved_and_rejected.py"
    assert run(script).stdout == run(script).stdout
