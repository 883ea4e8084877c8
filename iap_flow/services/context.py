"""The one write path: permission -> machine -> state + audit + outbox + deadlines, in one
transaction, with idempotency keys.

Every service command runs through :meth:`Context.run` (or :meth:`Context.run_calling` when
it calls a payment platform; its key claims are in :mod:`.claims`), and every change to a
record through :meth:`Context.change` (a state change) or :meth:`Context.amend` (an audited
change within a state). Nothing else in the core writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

import attrs

from iap_flow import observability
from iap_flow.domain import deadlines
from iap_flow.domain.clock import utc
from iap_flow.domain.errors import (
    ConcurrentModification,
    IdempotencyKeyReused,
    InvalidInput,
    OperationInProgress,
    RefundNotAllowed,
    StoreError,
)
from iap_flow.domain.ids import IdGenerator
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    DeadlineKind,
    Notification,
    Order,
    Platform,
    RefundRequest,
    Subscription,
    Ticket,
)
from iap_flow.domain.policy import Policy
from iap_flow.domain.roles import Actor
from iap_flow.domain.transitions import ORDER, REFUND, SUBSCRIPTION, TICKET, TransitionTable
from iap_flow.ports import Acknowledges, Clock, Notifier, PaymentPlatform, Store, UnitOfWork
from iap_flow.services import results, sla
from iap_flow.services.claims import Claims
from iap_flow.services.claims import command_fingerprint as _fingerprint
from iap_flow.services.inputs import check
from iap_flow.services.instrumented import InstrumentedPlatform
from iap_flow.services.outbox import Outbox

T = TypeVar("T")
Record = TypeVar("Record", bound=Order | RefundRequest | Ticket | Subscription)

MAX_CONFLICT_RETRIES = 4
"""A command whose version check lost to a concurrent write runs again on fresh reads."""

log = logging.getLogger("iap_flow")


_WRITERS: dict[type, tuple[TransitionTable[Any], Callable[[UnitOfWork, Any, int], None]]] = {
    Order: (ORDER, lambda tx, record, version: tx.update_order(record, version)),
    RefundRequest: (REFUND, lambda tx, record, version: tx.update_refund(record, version)),
    Ticket: (TICKET, lambda tx, record, version: tx.update_ticket(record, version)),
    Subscription: (
        SUBSCRIPTION,
        lambda tx, record, version: tx.update_subscription(record, version),
    ),
}


@attrs.define
class Context(Outbox, Claims):
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
    _instrumented: dict[Platform, PaymentPlatform] = attrs.field(factory=dict, init=False)
    _acknowledges: dict[Platform | None, bool] = attrs.field(factory=dict, init=False)

    def actor(self, actor: object) -> Actor:
        if not isinstance(actor, Actor):
            raise InvalidInput(
                f"actor must be an iap_flow.Actor, got {type(actor).__name__}", field="actor"
            )
        return actor

    def platform(self, platform: Platform) -> PaymentPlatform:
        found = self._instrumented.get(platform)
        if found is not None:
            return found
        try:
            found = self._instrumented[platform] = InstrumentedPlatform(self.platforms[platform])
            return found
        except KeyError:
            raise InvalidInput(
                f"no payment platform configured for {platform}; configured: "
                + ", ".join(sorted(self.platforms)),
                field="platform",
            ) from None

    def now(self) -> datetime:
        """The clock's time, normalised to UTC whatever offset an injected clock uses."""
        return utc(self.clock.now(), "clock.now()")

    # -- transactions -------------------------------------------------------------------------
    def run(
        self,
        actor: Actor,
        command: str,
        args: dict[str, Any],
        key: str | None,
        body: Callable[[UnitOfWork, datetime], T],
        *,
        claimed: bool = False,
        fingerprint: str | None = None,
    ) -> T:
        """Run ``body`` in one transaction; with ``key``, at most once.

        A body that loses a version check to a concurrent write (nothing it wrote is kept) runs
        again on fresh reads, so the caller sees the outcome against the winner's state (an
        :class:`~iap_flow.domain.errors.AlreadyDecided`, say) rather than a bare conflict.
        ``claimed``: the key was claimed by :meth:`run_calling` and is this call's to finish
        (``fingerprint``: its fingerprint, already computed). The first attempt then skips
        reading the key and finishes the claim checked: a claim someone else finished
        meanwhile fails that check, and the command runs again the long way.
        """
        if fingerprint is None:
            fingerprint = _fingerprint(command, actor, args) if key is not None else ""
        for attempt in range(MAX_CONFLICT_RETRIES + 1):
            try:
                return self._run_once(command, key, fingerprint, body, claimed, attempt == 0)
            except ConcurrentModification:
                if attempt == MAX_CONFLICT_RETRIES:
                    raise
            except StoreError as exc:
                observability.store_error(type(exc).__name__)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_once(
        self,
        command: str,
        key: str | None,
        fingerprint: str,
        body: Callable[[UnitOfWork, datetime], T],
        claimed: bool,
        first: bool = True,
    ) -> T:
        now = self.now()
        local = self._local
        written: list[Notification] = []
        local.written = written
        local.sent = 0
        trust_claim = claimed and first
        with self.store.transaction() as tx:
            if key is not None and not trust_claim:
                hit = tx.idempotency_get(key)
                if hit is not None:
                    if hit.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(key, hit.command)
                    if hit.result is not None:
                        result: T = results.load_result(hit.result)
                        return result
                    if not claimed:  # another caller's platform call is under way
                        raise OperationInProgress(key)
            result = body(tx, now)
            if key is not None:
                if trust_claim:
                    tx.idempotency_finish(key, fingerprint, results.dump_result(result))
                else:
                    tx.idempotency_put(key, command, fingerprint, results.dump_result(result), now)
        if written:
            local.sent = self._send(written)
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
        if hit is None or hit.result is None:
            return None
        if hit.fingerprint != _fingerprint(command, actor, args):
            raise IdempotencyKeyReused(key, hit.command)
        return results.load_result(hit.result)

    # -- the one way a record changes -----------------------------------------------------------
    def change(
        self,
        tx: UnitOfWork,
        record: Record,
        event: str,
        actor: Actor,
        now: datetime,
        data: dict[str, Any] | None = None,
        *,
        handled: DeadlineKind | None = None,
    ) -> Record:
        """Fire ``event`` on ``record``: the actor's permission (buyers on their own records
        only), the transition from the machine's table, its audit event and deadline changes,
        the new status and a version-checked save, all in ``tx``.

        Set any other fields the event changes on ``record`` before calling. ``handled`` is a
        deadline the caller (the sweep) closes itself.
        """
        table, update = _WRITERS[type(record)]
        check(actor, f"{table.aggregate}.{event}", record.user_id)
        state = record.status
        target = table.target(record.id, state, event)
        tx.add_audit(
            AuditEvent(
                table.aggregate,
                record.id,
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
        # The deadlines this step ends and those it starts afresh close in one statement.
        opened = self._opened(f"{table.aggregate}.{event}", getattr(record, "platform", None))
        kinds = tuple(dict.fromkeys((*closed, *(rule.kind for rule in opened))))
        if kinds:
            tx.close_deadlines(record.id, kinds)
        for rule in opened:
            tx.add_deadline(sla.deadline(self.policy, rule, record.id, now, record))
        if isinstance(record, Ticket):
            sla.changed(self.policy, tx, record, state, target, now)
        record.status = target
        self._save(tx, update, record, now)
        return record

    def amend(
        self,
        tx: UnitOfWork,
        record: Record,
        event: str,
        actor: Actor,
        now: datetime,
        data: dict[str, Any] | None = None,
        *,
        action: str | None = None,
        save: bool = True,
    ) -> Record:
        """Record something that happened to ``record`` without a state change: audited
        (from = to) under ``action`` (default ``<aggregate>.<event>``), saved version-checked
        unless ``save`` is False (nothing but the audit event changed)."""
        table, update = _WRITERS[type(record)]
        check(actor, action or f"{table.aggregate}.{event}", record.user_id)
        state = record.status
        tx.add_audit(
            AuditEvent(
                table.aggregate,
                record.id,
                event,
                state,
                state,
                actor.id,
                actor.role,
                now,
                data or {},
            )
        )
        if save:
            self._save(tx, update, record, now)
        return record

    @staticmethod
    def _save(
        tx: UnitOfWork,
        update: Callable[[UnitOfWork, Any, int], None],
        record: Order | RefundRequest | Ticket | Subscription,
        now: datetime,
    ) -> None:
        if type(record) is Order and not 0 <= record.refunded_amount <= record.amount.amount:
            raise RefundNotAllowed(
                f"order {record.id} would have {record.refunded_amount} refunded of "
                f"{record.amount.amount} paid: refunds never exceed what was paid",
                order_id=record.id,
            )
        version = record.version
        record.version, record.updated_at = version + 1, now
        update(tx, record, version)

    def created(
        self,
        tx: UnitOfWork,
        table: TransitionTable[Any],
        subject_id: str,
        action: str,
        actor: Actor,
        now: datetime,
        data: dict[str, Any] | None = None,
        *,
        record: object = None,
    ) -> None:
        """Audit the creation of a record in its machine's initial state, open its deadlines
        (a ``record`` given, a ticket, gets its due times set: save it after)."""
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
        self.open_deadlines(tx, action, subject_id, now, fresh=True, record=record)

    def open_deadlines(
        self,
        tx: UnitOfWork,
        action: str,
        subject_id: str,
        now: datetime,
        *,
        fresh: bool = False,
        platform: Platform | None = None,
        record: object = None,
    ) -> None:
        """Open the deadlines ``action`` starts; replaces open ones of the same kind unless the
        record is ``fresh`` (just created, so it has none). A deadline that calls the record's
        ``platform`` (an acknowledgement) opens only if that platform is told of deliveries."""
        rules = self._opened(action, platform or getattr(record, "platform", None))
        if not rules:
            return
        if not fresh:
            tx.close_deadlines(subject_id, tuple(rule.kind for rule in rules))
        for rule in rules:
            tx.add_deadline(sla.deadline(self.policy, rule, subject_id, now, record))

    def _opened(self, action: str, platform: Platform | None) -> tuple[deadlines.DeadlineRule, ...]:
        """The deadlines ``action`` starts; one that calls the record's ``platform`` (an
        acknowledgement) only if that platform is told of deliveries."""
        rules = deadlines.opened_by(action)
        if not any(rule.calls_platform for rule in rules):
            return tuple(rules)
        return tuple(r for r in rules if self.acknowledges(platform) or not r.calls_platform)

    def acknowledges(self, platform: Platform | None) -> bool:
        """Is ``platform`` told of each delivered purchase (:class:`Acknowledges`)? Asked on
        every delivery: answered once per platform (a runtime protocol check is slow)."""
        told = self._acknowledges.get(platform)
        if told is None:
            found = None if platform is None else self.platforms.get(platform)
            told = isinstance(found, Acknowledges) and found.acknowledges_deliveries
            self._acknowledges[platform] = told
        return told

    def acknowledger(self, platform: Platform) -> Acknowledges | None:
        """The (instrumented) platform to tell of a delivery, if :meth:`acknowledges` says
        it is told of them; else None."""
        if not self.acknowledges(platform):
            return None
        # the instrumented wrapper forwards what else its adapter offers (acknowledging)
        return cast(Acknowledges, self.platform(platform))
