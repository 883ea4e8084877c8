"""The one write path: permission -> machine -> state + audit + outbox + deadlines, in one
transaction, with idempotency keys.

Every service command runs through :meth:`Context.run`, and every state change through
:meth:`Context.fire`. Nothing else in the core writes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs

from iap_flow import codec
from iap_flow.domain import deadlines, roles
from iap_flow.domain.errors import IdempotencyKeyReused, InvalidInput, NotFound
from iap_flow.domain.ids import IdGenerator
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Deadline,
    DeadlineKind,
    Notification,
    Platform,
)
from iap_flow.domain.policy import Policy
from iap_flow.domain.roles import Actor, Role
from iap_flow.domain.transitions import TransitionTable
from iap_flow.ports import Clock, Notifier, PaymentPlatform, Store, UnitOfWork

T = TypeVar("T")

STAFF_RECIPIENTS = frozenset(
    {
        Role.SUPPORT_AGENT.value,
        Role.SUPPORT_LEAD.value,
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
MAX_ID = 128
MAX_TEXT = 5_000


def text(value: object, field: str, *, max_len: int = MAX_TEXT, min_len: int = 1) -> str:
    """Validate a free-text input: a str, stripped, within length bounds."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {type(value).__name__}", field=field)
    stripped = value.strip()
    if len(stripped) < min_len:
        if min_len == 1:
            raise InvalidInput(f"{field} must not be empty", field=field)
        raise InvalidInput(f"{field} must be at least {min_len} characters", field=field)
    if len(stripped) > max_len:
        raise InvalidInput(f"{field} must be at most {max_len} characters", field=field)
    return stripped


def ident(value: object, field: str) -> str:
    """Validate an id given by a caller."""
    return text(value, field, max_len=MAX_ID)


def names(value: object, field: str) -> list[str]:
    """One name or an iterable of names (statuses), as a list; anything else is refused."""
    try:
        items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    except TypeError:
        items = [value]
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(
                f"{field} must be a name or a list of names, got {value!r}", field=field
            )
    return items


def key_or_none(value: object) -> str | None:
    if value is None:
        return None
    return text(value, "idempotency_key", max_len=200)


@attrs.define
class Context:
    """What every service shares: the store, the clock, policy, platforms and notifier."""

    store: Store
    clock: Clock
    ids: IdGenerator
    policy: Policy
    platforms: Mapping[Platform, PaymentPlatform]
    default_platform: Platform
    notifier: Notifier
    deliver_inline: bool = True
    audiences: frozenset[Audience] = frozenset(Audience)
    _local: threading.local = attrs.field(factory=threading.local, init=False)

    def actor(self, actor: object) -> Actor:
        if not isinstance(actor, Actor):
            raise InvalidInput(
                f"actor must be an iap_flow.Actor, got {type(actor).__name__}", field="actor"
            )
        return actor

    def platform(self, platform: Platform) -> PaymentPlatform:
        try:
            return self.platforms[platform]
        except KeyError:
            raise InvalidInput(
                f"no payment platform configured for {platform}; configured: "
                + ", ".join(sorted(self.platforms)),
                field="platform",
            ) from None

    def run(
        self,
        actor: Actor,
        command: str,
        args: dict[str, Any],
        key: str | None,
        body: Callable[[UnitOfWork, datetime], T],
    ) -> T:
        """Run ``body`` in one transaction; with ``key``, at most once."""
        now = self.clock.now()
        local = self._local
        written: list[Notification] = []
        local.written = written
        with self.store.transaction() as tx:
            if key is not None:
                fingerprint = _fingerprint(command, actor, args)
                hit = tx.idempotency_get(key)
                if hit is not None:
                    if hit[1] != fingerprint:
                        raise IdempotencyKeyReused(key, hit[0])
                    result: T = codec.load_result(hit[2])
                    return result
            result = body(tx, now)
            if key is not None:
                tx.idempotency_put(key, command, fingerprint, codec.dump_result(result), now)
        local.sent = self._send(written) if written else 0
        return result

    @property
    def sent_inline(self) -> int:
        """How many notifications this thread's last :meth:`run` delivered right after commit."""
        sent: int = getattr(self._local, "sent", 0)
        return sent

    def replay(self, actor: Actor, command: str, args: dict[str, Any], key: str | None) -> Any:
        """The stored result for ``key``, if this exact command already ran; else None."""
        if key is None:
            return None
        with self.store.transaction() as tx:
            hit = tx.idempotency_get(key)
        if hit is None:
            return None
        if hit[1] != _fingerprint(command, actor, args):
            raise IdempotencyKeyReused(key, hit[0])
        return codec.load_result(hit[2])

    def fire(
        self,
        tx: UnitOfWork,
        table: TransitionTable,
        subject_id: str,
        state: str,
        event: str,
        actor: Actor,
        now: datetime,
        data: dict[str, Any] | None = None,
        handled: DeadlineKind | None = None,
    ) -> str:
        """Check the transition, write its audit event and its deadline changes.

        Returns the target state; the caller writes the record with it (version checked).
        ``handled`` is a deadline the caller (the sweep) closes itself.
        """
        target = table.target(subject_id, state, event)
        action = f"{table.aggregate}.{event}"
        tx.add_audit(
            AuditEvent(
                table.aggregate,
                subject_id,
                event,
                state,
                target,
                actor.id,
                actor.role,
                now,
                data or {},
            )
        )
        closed = deadlines.closed_by(table.aggregate, state, target)
        if handled is not None:
            closed = tuple(kind for kind in closed if kind is not handled)
        if closed:
            tx.close_deadlines(subject_id, closed)
        self.open_deadlines(tx, action, subject_id, now, fresh=False)
        return target

    def created(
        self,
        tx: UnitOfWork,
        table: TransitionTable,
        subject_id: str,
        action: str,
        actor: Actor,
        now: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Audit the creation of a record in its machine's initial state, open its deadlines."""
        tx.add_audit(
            AuditEvent(
                table.aggregate,
                subject_id,
                action.split(".", 1)[1],
                None,
                table.initial,
                actor.id,
                actor.role,
                now,
                data or {},
            )
        )
        self.open_deadlines(tx, action, subject_id, now, fresh=True)

    def open_deadlines(
        self, tx: UnitOfWork, action: str, subject_id: str, now: datetime, *, fresh: bool = False
    ) -> None:
        """Open the deadlines ``action`` starts; replaces open ones of the same kind unless the
        record is ``fresh`` (just created, so it has none)."""
        rules = deadlines.opened_by(action)
        if not rules:
            return
        if not fresh:
            tx.close_deadlines(subject_id, tuple(rule.kind for rule in rules))
        for rule in rules:
            window = self.policy.window(rule.kind)
            remind = now + window * self.policy.remind_at_fraction if rule.reminds else None
            tx.add_deadline(Deadline(rule.kind, subject_id, now + window, remind_at=remind))

    def notify(
        self, tx: UnitOfWork, topic: str, recipient: str, payload: dict[str, Any], now: datetime
    ) -> None:
        """Write a notification to the outbox in this transaction.

        With inline delivery the row is born claimed by this process, which sends it right
        after the commit; if the process dies first, the claim lapses and a later
        :meth:`deliver` (or sweep) anywhere sends it: at least once, never lost.
        """
        audience = Audience.STAFF if recipient in STAFF_RECIPIENTS else Audience.BUYER
        mine = self.deliver_inline and audience in self.audiences
        note = Notification(topic, recipient, payload, now, audience=audience)
        note_id = tx.add_notification(note, now + LEASE if mine else None)
        if mine:  # built again rather than attrs.evolve: this runs on every paid order
            self._local.written.append(
                Notification(topic, recipient, payload, now, id=note_id, audience=audience)
            )

    def _send(self, notes: list[Notification]) -> int:
        delivered: list[int] = []
        for note in notes:
            assert note.id is not None
            try:
                self.notifier.send(note)
            except Exception as exc:  # any notifier fault: keep it pending, record why
                self.store.mark_failed(note.id, f"{type(exc).__name__}: {exc}")
            else:
                delivered.append(note.id)
        self.store.mark_delivered(delivered, self.clock.now())
        return len(delivered)

    def deliver(self, limit: int = 500) -> int:
        """Send pending outbox notifications; failures stay pending for the next try."""
        sent = 0
        while True:
            batch = self.store.claim_notifications(
                limit, self.clock.now(), LEASE_SECONDS, tuple(self.audiences)
            )
            if not batch:
                return sent
            done = self._send(batch)
            sent += done
            if done < len(batch) or len(batch) < limit:
                return sent


def _fingerprint(command: str, actor: Actor, args: dict[str, Any]) -> str:
    blob = json.dumps([command, actor.id, actor.role, args], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def must(value: T | None, kind: str, id: str) -> T:
    if value is None:
        raise NotFound(kind, id)
    return value


def check(actor: Actor, action: str, owner_id: str | None = None) -> None:
    roles.check(actor, action, owner_id=owner_id)
