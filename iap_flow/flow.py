"""The composition root: :func:`open_flow` builds a :class:`Flow` on a store URL.

Adapters are found by name at open time (never imported by the core at import time), so the
core depends on no adapter and a deployment pulls in only the drivers it uses.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from iap_flow.domain.clock import SystemClock, utc
from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.ids import IdGenerator
from iap_flow.domain.models import (
    Audience,
    AuditEvent,
    Deadline,
    Order,
    OutboxBacklog,
    Platform,
    RefundRequest,
    Ticket,
)
from iap_flow.domain.policy import Policy
from iap_flow.domain.roles import SYSTEM, Actor, Role
from iap_flow.ports import Clock, Notifier, PaymentPlatform, Store
from iap_flow.report import OPERATIONS_QUERIES, Report, build_report
from iap_flow.services import acknowledgement, inputs
from iap_flow.services.catalogue import Catalogue
from iap_flow.services.context import Context
from iap_flow.services.entitlements import Entitlements
from iap_flow.services.feedback import Feedback
from iap_flow.services.inputs import check, ident, text
from iap_flow.services.orders import Orders
from iap_flow.services.platform_events import PlatformEvents
from iap_flow.services.reconciliation import ReconciliationLog
from iap_flow.services.refunds import Refunds
from iap_flow.services.subscriptions import Subscriptions
from iap_flow.services.sweep import Sweeper, SweepResult

STORES: dict[str, str] = {
    "sqlite": "iap_flow.adapters.sqlite_store:SQLiteStore",
    "postgresql": "iap_flow.adapters.postgres:PostgresStore",
    "postgres": "iap_flow.adapters.postgres:PostgresStore",
}
"""URL scheme -> ``module:class`` of the built-in stores (the class has ``from_url(url)``);
entry points in the ``iap_flow.stores`` group add stores and take precedence."""
STORE_ENTRY_POINTS = "iap_flow.stores"


def store_schemes() -> dict[str, str]:
    """Every store URL scheme this installation knows: built-in and from entry points."""
    found = dict(STORES)
    for entry in importlib.metadata.entry_points(group=STORE_ENTRY_POINTS):
        found[entry.name] = entry.value
    return found


DEFAULT_URL = "sqlite:///iap_flow.db"


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        extra = "postgres" if "postgres" in module else None
        hint = f" (pip install 'iap-flow[{extra}]')" if extra else ""
        raise InvalidInput(f"cannot load {path}: {exc}{hint}") from exc


def open_store(url: str) -> Store:
    """The store for ``url``: ``sqlite:///path.db``, ``sqlite://`` (memory), ``postgresql://...``."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput(
            f"store URL must look like sqlite:///orders.db or postgresql://host/db, got {url!r}",
            field="url",
        )
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    schemes = store_schemes()
    if scheme not in schemes:
        raise InvalidInput(
            f"unknown store scheme {scheme!r}; use one of {', '.join(sorted(schemes))}",
            field="url",
        )
    store: Store = _load(schemes[scheme]).from_url(url)
    return store


class Flow:
    """One order-management process on one store. Build it with :func:`open_flow`.

    Areas: :attr:`catalogue`, :attr:`orders`, :attr:`refunds`, :attr:`feedback`,
    :attr:`subscriptions`, :attr:`entitlements` (what a buyer may use now),
    :attr:`platform_events` (what a payment platform did by itself, fed by store adapters),
    :attr:`reconciliation` (where each platform's reconciliation left off); and
    :meth:`sweep`, :meth:`acknowledge`, :meth:`history`, :meth:`deliver_notifications`, :meth:`report`.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.catalogue = Catalogue(ctx)
        self.orders = Orders(ctx)
        self.refunds = Refunds(ctx)
        self.platform_events = PlatformEvents(ctx, self.refunds)
        self.feedback = Feedback(ctx)
        self.subscriptions = Subscriptions(ctx)
        self.entitlements = Entitlements(ctx)
        self.reconciliation = ReconciliationLog(ctx)
        self._sweeper = Sweeper(ctx, self.refunds)

    @property
    def platforms(self) -> tuple[PaymentPlatform, ...]:
        """The payment platforms this flow was opened with, the default one first."""
        ctx = self._ctx
        default = ctx.platforms[ctx.default_platform]
        return (default, *(p for p in ctx.platforms.values() if p is not default))

    def acknowledge(self, actor: Actor, order_id: str) -> Order:
        """Tell the order's platform its purchase was delivered (Google Play refunds one not
        acknowledged within 3 days); the sweep does it after delivery, retries and escalates
        (see :mod:`iap_flow.services.acknowledgement`). Call it to retry at once."""
        return acknowledgement.acknowledge(self._ctx, actor, order_id)

    @property
    def store(self) -> Store:
        return self._ctx.store

    @property
    def clock(self) -> Clock:
        return self._ctx.clock

    @property
    def policy(self) -> Policy:
        return self._ctx.policy

    def sweep(self, actor: Actor = SYSTEM, *, now: datetime | None = None) -> SweepResult:
        """Act on every due deadline (remind, expire, escalate, retry); safe to run often."""
        return self._sweeper.sweep(actor, now=now)

    def history(self, actor: Actor, subject_id: str) -> list[AuditEvent]:
        """The audit trail of one order, refund or ticket, oldest first.

        Raises :class:`~iap_flow.domain.errors.NotFound` for an id with no trail: every record has
        at least its creation event, so an empty trail means a mistyped or unknown id.
        A buyer may read the trail of their own orders, refunds and tickets only.
        """
        actor = self._ctx.actor(actor)
        check(actor, "audit.read")
        subject_id = ident(subject_id, "subject_id")
        if actor.role is Role.BUYER:
            check(actor, "audit.read", self._owner(subject_id) or "")
        events = self._ctx.store.history(subject_id)
        if not events:
            raise NotFound("record", subject_id)
        return events

    def _owner(self, subject_id: str) -> str | None:
        store = self._ctx.store
        record: Order | RefundRequest | Ticket | None = (
            store.get_order(subject_id)
            or store.get_refund(subject_id)
            or store.get_ticket(subject_id)
        )
        return None if record is None else record.user_id

    def readiness(self) -> tuple[bool, int | None, int | None]:
        """``(reachable, schema version found, schema version expected)`` of the store, for
        health checks: ready when it is reachable and the versions agree."""
        store = self._ctx.store
        expected = getattr(importlib.import_module(type(store).__module__), "SCHEMA_VERSION", None)
        try:
            found = int(store.schema_version)  # type: ignore[attr-defined]
        except Exception:  # any driver fault means: not reachable
            return False, None, expected
        return True, found, expected

    def pending_deadlines(self, actor: Actor, subject_id: str) -> list[Deadline]:
        """The open deadlines of one order, refund or ticket, soonest first (like the audit
        trail: staff any, a buyer their own records')."""
        actor = self._ctx.actor(actor)
        check(actor, "audit.read")
        subject_id = ident(subject_id, "subject_id")
        if actor.role is Role.BUYER:
            check(actor, "audit.read", self._owner(subject_id) or "")
        found = self._ctx.store.pending_deadlines(subject_id)
        return sorted(found, key=lambda d: (d.due_at, d.kind.value))

    def deadlines_due(self, actor: Actor, *, within: timedelta = timedelta(0)) -> list[Deadline]:
        """Every open deadline overdue or due ``within`` from now, soonest first (on-call)."""
        check(self._ctx.actor(actor), "operations.read")
        if not isinstance(within, timedelta) or within < timedelta(0):
            raise InvalidInput("within must be a timedelta of 0 or more", field="within")
        until = self._ctx.now() + within
        found = [d for d in self._ctx.store.pending_deadlines(None) if d.due_at <= until]
        return sorted(found, key=lambda d: (d.due_at, d.kind.value))

    def outbox_backlog(self, actor: Actor) -> OutboxBacklog:
        """How many notifications wait to be delivered, the oldest's time, how many failed."""
        check(self._ctx.actor(actor), "operations.read")
        row = self._ctx.store.report_rows("outbox_backlog", {})[0]
        return OutboxBacklog(
            int(row["pending"] or 0), _instant(row["oldest"]), int(row["failing"] or 0)
        )

    def outbox_pending(
        self, actor: Actor, *, after: int = 0, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Notifications not delivered yet after id ``after``, oldest first: id, topic,
        recipient, audience, created_at, attempts and last_error."""
        check(self._ctx.actor(actor), "operations.read")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be an int of 0 or more", field="after")
        rows = self._ctx.store.report_rows(
            "outbox_pending", {"after": after, "limit": inputs.limit(limit, 1000)}
        )
        return [{**r, "created_at": _instant(r["created_at"])} for r in rows]

    def report_rows(
        self, actor: Actor, sql_name: str, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The rows of one named aggregate (:mod:`iap_flow.report`, the analysis): the
        analysts' read of the whole store (the outbox's are on-call's: :meth:`outbox_backlog`)."""
        check(self._ctx.actor(actor), "report.read")
        if sql_name in OPERATIONS_QUERIES:
            raise InvalidInput(f"{sql_name} is on-call's read, not a report", field="sql_name")
        return self._ctx.store.report_rows(sql_name, params)

    def record_event(
        self, actor: Actor, source: str, event_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Record that an inbound event (a store notification, a Slack retry) was processed,
        with what processing it did (``result``) if given; False if any process recorded it
        before (its record is kept). Several instances agree through the store."""
        check(self._ctx.actor(actor), "event.remember")
        source, event_id = _event(source, event_id)
        kept = None if result is None else json.dumps(dict(result))
        with self._ctx.store.transaction() as tx:
            return tx.remember_event(source, event_id, self._ctx.now(), kept)

    def event_result(self, actor: Actor, source: str, event_id: str) -> dict[str, Any] | None:
        """The ``result`` :meth:`record_event` kept for an inbound event; None if the event
        was not recorded (or was recorded without one)."""
        check(self._ctx.actor(actor), "event.remember")
        source, event_id = _event(source, event_id)
        with self._ctx.store.transaction() as tx:
            found = tx.event_result(source, event_id)
        return None if found is None else dict(json.loads(found))

    def deliver_notifications(self, actor: Actor = SYSTEM) -> int:
        """Send pending outbox notifications now; returns how many were delivered."""
        check(self._ctx.actor(actor), "outbox.deliver")
        return self._ctx.deliver()

    def report(
        self, actor: Actor, *, since: datetime | None = None, until: datetime | None = None
    ) -> Report:
        """The summary report for orders created in ``[since, until)``."""
        check(self._ctx.actor(actor), "report.read")
        since = None if since is None else utc(since, "since")
        until = None if until is None else utc(until, "until")
        if since is not None and until is not None and since >= until:
            raise InvalidInput("since must be before until", field="since")
        return build_report(self._ctx.store.report_rows, since, until)

    def close(self) -> None:
        self._ctx.store.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_flow(
    url: str = DEFAULT_URL,
    *,
    platforms: Iterable[PaymentPlatform] | None = None,
    notifier: Notifier | None = None,
    clock: Clock | None = None,
    policy: Policy | None = None,
    seed: int | None = None,
    deliver_inline: bool = True,
    audiences: Iterable[Audience | str] = tuple(Audience),
) -> Flow:
    """Open the process on a store.

    ``platforms`` defaults to the deterministic sandbox platform, ``notifier`` to JSON lines on
    stdout, ``clock`` to the system clock. ``seed`` makes ids reproducible (simulations).
    With ``deliver_inline`` (default) notifications are sent right after the change that
    made them commits; otherwise they wait in the outbox for :meth:`Flow.deliver_notifications`
    or the sweep. ``audiences`` says whose notifications this process delivers (``"buyer"``,
    ``"staff"``; both by default): an app backend that pushes to buyers opens with
    ``audiences=["buyer"]`` and leaves the staff's to the Slack bot, which opens with
    ``["staff"]``; each is delivered once, by its own process. With none (``[]``) the process
    only writes notifications for others to deliver (a cron sweep). Every process of a
    deployment can open its flow from one configuration file with
    :func:`iap_flow.config.open_flow_from_config`.

    >>> from iap_flow import open_flow
    >>> with open_flow("sqlite://") as flow:
    ...     flow.catalogue.products()
    []
    """
    if platforms is None:
        platforms = [_load("iap_flow.adapters.sandbox:SandboxPlatform")()]
    by_name: dict[Platform, PaymentPlatform] = {}
    for platform in platforms:
        by_name[platform.platform] = platform
    if not by_name:
        raise InvalidInput("open_flow needs at least one payment platform", field="platforms")
    if notifier is None:
        notifier = _load("iap_flow.adapters.notifiers:JsonLinesNotifier")()
    chosen = frozenset(
        inputs.member(Audience, a, "audiences") for a in audiences
    )  # empty: this process delivers none
    store = open_store(url)
    ctx = Context(
        store=store,
        clock=clock or SystemClock(),
        ids=IdGenerator(seed),
        policy=policy or Policy(),
        platforms=by_name,
        default_platform=next(iter(by_name)),
        notifier=notifier,
        deliver_inline=deliver_inline,
        audiences=chosen,
    )
    return Flow(ctx)


def _event(source: str, event_id: str) -> tuple[str, str]:
    return ident(source, "source"), text(event_id, "event_id", max_len=500)


def _instant(value: object) -> datetime | None:
    """A time from a report row (text on every store), or None."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
