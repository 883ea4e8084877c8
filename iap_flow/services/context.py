"""The one write path: permission -> machine -> state + audit + outbox + deadlines, in one
transaction, with idempotency keys.

Every service command runs through :meth:`Context.run` (or :meth:`Context.run_calling` when
it calls a payment platform), and every change to a record through :meth:`Context.change`
(a state change) or :meth:`Context.amend` (an audited change within a state). Nothing else in
the core writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import attrs

from iap_flow import codec, observability
from iap_flow.domain import deadlines
from iap_flow.domain.clock import utc
from iap_flow.domain.errors import (
    ConcurrentModification,
    IdempotencyKeyReused,
    InvalidInput,
    OperationInProgress,
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
from iap_flow.ports import Clock, Notifier, PaymentPlatform, Store, UnitOfWork
from iap_flow.services import sla
from iap_flow.services.inputs import check
from iap_flow.services.instrumented import InstrumentedPlatform
from iap_flow.services.outbox import Outbox

T = TypeVar("T")
R = TypeVar("R")
Record = TypeVar("Record", bound=Order | RefundRequest | Ticket | Subscription)

CLAIM = timedelta(seconds=30)
"""How long an idempotency key claimed for a platform call stays another caller's to finish;
past it a caller with the same key takes over (calling the platform with the same key)."""
CLAIM_WAIT = timedelta(seconds=15)
"""How long a caller waits for another holder of its key to finish before giving up."""
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
class Context(Outbox):
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
            return InstrumentedPlatform(self.platforms[platform])
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
    ) -> T:
        """Run ``body`` in one transaction; with ``key``, at most once.

        A body that loses a version check to a concurrent write (nothing it wrote is kept) runs
        again on fresh reads, so the caller sees the outcome against the winner's state (an
        :class:`~iap_flow.domain.errors.AlreadyDecided`, say) rather than a bare conflict.
        ``claimed``: the key was claimed by :meth:`run_calling` and is this call's to finish.
        """
        fingerprint = _fingerprint(command, actor, args) if key is not None else ""
        for attempt in range(MAX_CONFLICT_RETRIES + 1):
            try:
                return self._run_once(command, key, fingerprint, body, claimed)
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
    ) -> T:
        now = self.now()
        local = self._local
        written: list[Notification] = []
        local.written = written
        local.sent = 0
        with self.store.transaction() as tx:
            if key is not None:
                hit = tx.idempotency_get(key)
                if hit is not None:
                    if hit.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(key, hit.command)
                    if hit.result is not None:
                        result: T = codec.load_result(hit.result)
                        return result
                    if not claimed:  # another caller's platform call is under way
                        raise OperationInProgress(key)
            result = body(tx, now)
            if key is not None:
                tx.idempotency_put(key, command, fingerprint, codec.dump_result(result), now)
        if written:
            local.sent = self._send(written)
        return result

    def run_calling(
        self,
        actor: Actor,
        command: str,
        args: dict[str, Any],
        key: str | None,
        call: Callable[[], R],
        body: Callable[[UnitOfWork, datetime, R], T],
    ) -> T:
        """A command that calls a payment platform between two transactions, at most once.

        With ``key``, the key is claimed (committed) before the platform is called: a second
        caller with the same key, in any process, waits for the first and returns its result;
        if the first died, the claim lapses after :data:`CLAIM` and the second takes over. The
        platform is always called with a key of its own derived from the record, so a call
        made again after a crash or a timeout never moves money twice. If the platform does
        not answer, or the transaction recording its answer fails, the claim is released and
        the error raised: a retry with the same key runs at once.
        """
        if key is None:
            answer = call()
            return self.run(actor, command, args, None, lambda tx, now: body(tx, now, answer))
        fingerprint = _fingerprint(command, actor, args)
        give_up = time.monotonic() + CLAIM_WAIT.total_seconds()
        delay = 0.005
        while True:
            state = self._claim(command, key, fingerprint)
            if state is _CLAIMED:
                break
            if not isinstance(state, _Pending):
                return cast(T, state)
            if time.monotonic() > give_up:
                raise OperationInProgress(key)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            answer = call()
            return self.run(
                actor, command, args, key, lambda tx, now: body(tx, now, answer), claimed=True
            )
        except BaseException:
            # Nothing recorded (or, after a lost COMMIT, the result is stored and this is a
            # no-op: only a claim without a result is released): a retry with the key goes
            # ahead at once instead of waiting out CLAIM, and the platform key makes it safe.
            self._release(key)
            raise

    def _claim(self, command: str, key: str, fingerprint: str) -> object:
        """Claim ``key`` for this caller (:data:`_CLAIMED`), or the first result, or
        :class:`_Pending` if another caller holds a live claim."""
        now = self.now()
        claiming = False
        try:
            with self.store.transaction() as tx:
                hit = tx.idempotency_get(key)
                if hit is not None:
                    if hit.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(key, hit.command)
                    if hit.result is not None:
                        return codec.load_result(hit.result)
                    if now - hit.at < CLAIM:
                        return _Pending()
                claiming = True  # a new claim, or the holder died: take over
                tx.idempotency_claim(key, command, fingerprint, now)
                return _CLAIMED
        except StoreError:
            if claiming:  # the COMMIT may have been lost after the claim was written
                self._release(key)
            raise

    def _release(self, key: str) -> None:
        try:
            with self.store.transaction() as tx:
                tx.idempotency_release(key)
        except StoreError:  # the claim lapses by itself after CLAIM
            log.warning("could not release idempotency key %r; it lapses by itself", key)

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
        return codec.load_result(hit.result)

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
        opened = deadlines.opened_by(f"{table.aggregate}.{event}")
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
        record: object = None,
    ) -> None:
        """Open the deadlines ``action`` starts; replaces open ones of the same kind unless the
        record is ``fresh`` (just created, so it has none)."""
        rules = deadlines.opened_by(action)
        if not rules:
            return
        if not fresh:
            tx.close_deadlines(subject_id, tuple(rule.kind for rule in rules))
        for rule in rules:
            tx.add_deadline(sla.deadline(self.policy, rule, subject_id, now, record))


class _Pending:
    """Another caller holds a live claim on the key."""


_CLAIMED = object()


def _fingerprint(command: str, actor: Actor, args: dict[str, Any]) -> str:
    blob = json.dumps([command, actor.id, actor.role, args], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
