"""The outbox: notifications written in the same transaction as the change that causes them,
delivered at least once, each to the audience (buyer or staff) decided here and only here."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from iap_flow.delivery import send_claimed
from iap_flow.domain.errors import StoreError
from iap_flow.domain.models import Audience, Notification
from iap_flow.domain.policy import SUPPORT_MANAGER
from iap_flow.domain.roles import Role
from iap_flow.ports import Notifier, Store, UnitOfWork

log = logging.getLogger("iap_flow")

STAFF_RECIPIENTS = frozenset(
    {
        Role.SUPPORT_AGENT.value,
        Role.SUPPORT_LEAD.value,
        SUPPORT_MANAGER,
        Role.PRODUCT_MANAGER.value,
        Role.DATA_ANALYST.value,
        Role.DEVELOPER.value,
    }
)
"""Recipients that are staff roles (notifications for whoever holds the role); any other
recipient is a buyer's user id."""
LEASE_SECONDS = 60
LEASE = timedelta(seconds=LEASE_SECONDS)
"""How long a worker's claim on an outbox notification lasts before another may retry it."""


def audience_of(recipient: str) -> Audience:
    """Who a notification for ``recipient`` is for: the one place this is decided."""
    return Audience.STAFF if recipient in STAFF_RECIPIENTS else Audience.BUYER


class Outbox:
    """The outbox half of :class:`~iap_flow.services.context.Context`."""

    store: Store
    notifier: Notifier
    deliver_inline: bool
    audiences: frozenset[Audience]
    _local: threading.local

    def now(self) -> datetime:
        raise NotImplementedError

    def notify(
        self, tx: UnitOfWork, topic: str, recipient: str, payload: dict[str, Any], now: datetime
    ) -> None:
        """Write a notification to the outbox in this transaction.

        With inline delivery the row is born claimed by this process, which sends it right
        after the commit; if the process dies first, the claim lapses and a later
        :meth:`deliver` (or sweep) anywhere sends it: at least once, never lost.
        """
        audience = audience_of(recipient)
        mine = self.deliver_inline and audience in self.audiences
        note = Notification(topic, recipient, payload, now, audience=audience)
        note_id = tx.add_notification(note, now + LEASE if mine else None)
        if mine:  # built again rather than attrs.evolve: this runs on every paid order
            self._local.written.append(
                Notification(topic, recipient, payload, now, id=note_id, audience=audience)
            )

    def _send(self, notes: list[Notification]) -> int:
        """Send ``notes`` (claimed by this worker) through :func:`~iap_flow.delivery.send_claimed`:
        each marked delivered as it is sent, the lease on the rest renewed while a long batch
        runs. Runs after a commit, so it never raises a store error: a store that cannot
        record the outcome leaves the notification claimed, and it is sent again once the
        claim lapses (at least once)."""
        try:
            return send_claimed(self.store, self.notifier, notes, self, LEASE_SECONDS)
        except StoreError as exc:
            log.warning("could not record the delivery of %d notifications: %s", len(notes), exc)
            return 0

    def deliver(self, limit: int = 500) -> int:
        """Send pending outbox notifications; failures stay pending for the next try."""
        sent = 0
        while True:
            batch = self.store.claim_notifications(
                limit, self.now(), LEASE_SECONDS, tuple(self.audiences)
            )
            if not batch:
                return sent
            done = self._send(batch)
            sent += done
            if done < len(batch) or len(batch) < limit:
                return sent
