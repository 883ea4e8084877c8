"""Idempotency-key claims for commands that call a payment platform: the key is claimed
(committed) before the call, so a second caller with the same key waits for the first and
gets its result, and a claim whose holder died lapses after :data:`CLAIM`.

The claim half of :class:`~iap_flow.services.context.Context` (which inherits it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from iap_flow.domain.errors import IdempotencyKeyReused, OperationInProgress, StoreError
from iap_flow.domain.roles import Actor
from iap_flow.ports import Store, UnitOfWork
from iap_flow.services import results

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("iap_flow")

CLAIM = timedelta(seconds=30)
"""How long an idempotency key claimed for a platform call stays another caller's to finish;
past it a caller with the same key takes over (calling the platform with the same key)."""
CLAIM_WAIT = timedelta(seconds=15)
"""How long a caller waits for another holder of its key to finish before giving up."""


class Claims:
    """The claim half of :class:`~iap_flow.services.context.Context`."""

    store: Store

    def now(self) -> datetime:
        raise NotImplementedError

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
        raise NotImplementedError

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
        fingerprint = command_fingerprint(command, actor, args)
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
                actor,
                command,
                args,
                key,
                lambda tx, now: body(tx, now, answer),
                claimed=True,
                fingerprint=fingerprint,
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
                if tx.idempotency_claim_new(key, command, fingerprint, now):
                    claiming = True  # the common case, a key nobody has used; committed next
                    return _CLAIMED
                hit = tx.idempotency_get(key)
                if hit is not None:
                    if hit.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(key, hit.command)
                    if hit.result is not None:
                        return results.load_result(hit.result)
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


class _Pending:
    """Another caller holds a live claim on the key."""


_CLAIMED = object()


def command_fingerprint(command: str, actor: Actor, args: dict[str, Any]) -> str:
    blob = json.dumps([command, actor.id, actor.role, args], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
