"""A core :class:`~iap_flow.ports.Notifier` that posts staff notifications to the review
channel, and the :class:`CardKeeper` that keeps every card of a record in step with it.

Staff notifications (``support``, ``support_agent``, ``support_lead``) become messages in the
review channel: a refund card with Approve / Reject, a feedback card with Reply / Resolve,
deadline reminders, and escalations that mention the leads (a refund's escalation carries its
own copy of the card). Buyers' notifications go to ``fallback`` if one is given; a flow opened
from the configuration hands this notifier the staff's only.

A post Slack refuses (``not_in_channel``, ``channel_not_found``, a rate limit after the
client's retries) raises, so the outbox keeps the notification; it is logged once per
notification and error, and retried with exponential backoff instead of on every tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.models import Notification, RefundStatus, TicketStatus
from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow
from iap_flow.ports import Notifier

from . import blocks, reads, screens
from .cards import Card, Cards, MemoryCards
from .config import RoleResolver, SlackConfig, make_client

log = logging.getLogger(__name__)

STAFF_RECIPIENTS = frozenset({"support", "support_agent", "support_lead", "support_manager"})
DONE = frozenset(
    {RefundStatus.REJECTED, RefundStatus.WITHDRAWN, RefundStatus.REFUNDED, TicketStatus.RESOLVED}
)
"""States after which a card never changes again."""
ESCALATED_TITLE = "Escalated refund request"
FIRST_CARD = frozenset({"refund.review_requested", "ticket.opened"})
"""Topics that post a record's first card (no earlier card to bring in step)."""


class PostDeferred(IapFlowError):
    """A staff notification waits for its next retry after Slack refused it."""

    code: ClassVar[str] = "post_deferred"


class CardKeeper:
    """Draws refund and ticket cards and keeps every posted copy in step with its record."""

    def __init__(self, flow: Flow, client: WebClient, cards: Cards | None = None) -> None:
        self.flow = flow
        self.client = client
        self.cards = cards or MemoryCards()
        self._guard = threading.Lock()
        self._deciding: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def deciding(self, record_id: str) -> Iterator[None]:
        """Hold the record while this instance changes it and redraws its cards: a second
        click on it here waits, then finds the cards already in step."""
        with self._guard:
            lock, users = self._deciding.get(record_id, (threading.Lock(), 0))
            self._deciding[record_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._deciding[record_id]
                if users == 1:
                    del self._deciding[record_id]
                else:
                    self._deciding[record_id] = (lock, users - 1)

    def draw(self, kind: str, record_id: str) -> tuple[blocks.Message, str]:
        """The card of ``kind`` for a record as it is now, and the record's state."""
        now = self.flow.clock.now()
        if kind == "ticket":
            ticket_view = reads.ticket_view(self.flow, SYSTEM, record_id)
            return blocks.ticket_card(ticket_view, now), str(ticket_view.ticket.status)
        view = reads.refund_view(self.flow, SYSTEM, record_id)
        title = ESCALATED_TITLE if kind == "refund_escalated" else "Refund request"
        return blocks.refund_card(view, now, title), str(view.refund.status)

    def track(self, record_id: str, kind: str, channel: str, ts: str, state: str) -> None:
        self.cards.add(Card(record_id, channel, ts, kind, state))

    def refresh(
        self,
        record_id: str,
        clicked: dict[str, str] | None = None,
        *,
        skip: str | None = None,
        stale_only: bool = False,
    ) -> int:
        """Redraw every card of a record (and the clicked message, if not tracked) but the
        one at ``skip``; ``stale_only``: only the tracked cards drawn in another state than
        the record's now (a lost race: the winner already redrew them). Returns how many
        messages were updated."""
        cards = [c for c in self.cards.of(record_id) if c.ts != skip]
        if stale_only:
            now = self._state(record_id)
            cards = [c for c in cards if c.state != now]
            known = {(c.channel, c.ts) for c in self.cards.of(record_id)}
            if clicked and (clicked.get("channel"), clicked.get("ts")) in known:
                clicked = None  # tracked: redrawn above only if stale
        if clicked and clicked.get("channel") and clicked.get("ts"):
            known = {(c.channel, c.ts) for c in cards}
            if (clicked["channel"], clicked["ts"]) not in known:
                kind = "ticket" if record_id.startswith("tkt") else "refund"
                cards.append(Card(record_id, clicked["channel"], clicked["ts"], kind, ""))
        updated, state = 0, None
        for card in cards:
            (text, shown), state = self.draw(card.kind, record_id)
            try:
                self.client.chat_update(channel=card.channel, ts=card.ts, text=text, blocks=shown)
                updated += 1
            except (SlackClientError, OSError) as exc:
                log.error("cannot update card %s of %s: %s", card.ts, record_id, _why(exc))
        if state is not None:
            self.cards.set_state(record_id, state)
        return updated

    def refresh_changed(self, limit: int = 200) -> int:
        """Redraw the cards whose record changed since they were drawn, whoever changed it
        (another bot instance, the CLI, the buyer, the payment platform)."""
        stale: set[str] = set()
        seen: dict[str, str] = {}
        for card in self.cards.live(frozenset(str(s) for s in DONE), limit):
            if card.record_id not in seen:
                try:
                    seen[card.record_id] = self._state(card.record_id)
                except IapFlowError as exc:
                    log.error("cannot read %s for its cards: %s", card.record_id, exc)
                    seen[card.record_id] = card.state
            if seen[card.record_id] != card.state:
                stale.add(card.record_id)
        updated = 0
        for record_id in sorted(stale):
            try:
                updated += self.refresh(record_id)
            except IapFlowError as exc:  # one unreadable record must not stall the others
                log.error("cannot redraw the cards of %s: %s", record_id, exc)
                self.cards.set_state(record_id, seen[record_id])
        return updated

    def _state(self, record_id: str) -> str:
        if record_id.startswith("tkt"):
            return str(self.flow.feedback.get(SYSTEM, record_id).status)
        return str(self.flow.refunds.get(SYSTEM, record_id).status)


class SlackNotifier:
    """Posts staff notifications to one channel; hands buyers' to ``fallback`` (if any).

    The flow is bound after it is opened (``notifier.bind(flow)``): the cards read the
    refund, order and ticket behind each notification through the core.
    """

    def __init__(
        self,
        client: WebClient,
        channel: str,
        *,
        fallback: Notifier | None = None,
        lead_mention: Callable[[], str] = lambda: "support leads",
        cards: Cards | None = None,
        retry_base: float = 5.0,
        retry_max: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._channel = channel
        self._fallback = fallback
        self._leads = lead_mention
        self._cards = cards
        self._retry_base, self._retry_max = retry_base, retry_max
        self.monotonic = monotonic
        self._failures: dict[int, tuple[int, float, str]] = {}  # id -> (tries, next at, error)
        self._lock = threading.Lock()
        self.keeper: CardKeeper | None = None

    @classmethod
    def from_config(
        cls,
        config: SlackConfig,
        *,
        fallback: Notifier | None = None,
        client: WebClient | None = None,
        cards: Cards | None = None,
    ) -> SlackNotifier:
        """The notifier for a configured workspace."""
        client = client or make_client(config)
        roles = RoleResolver(config.roles, client, ttl_seconds=config.role_cache_seconds)
        return cls(
            client,
            config.review_channel,
            fallback=fallback,
            lead_mention=roles.lead_mention,
            cards=cards,
        )

    def bind(self, flow: Flow) -> CardKeeper:
        """Attach the flow whose records the cards show; returns its card keeper."""
        self.keeper = CardKeeper(flow, self._client, self._cards)
        return self.keeper

    def send(self, notification: Notification) -> None:
        """Post a staff notification to the review channel, or pass a buyer's on."""
        if notification.recipient not in STAFF_RECIPIENTS:
            if self._fallback is None:
                raise PostDeferred(f"no destination for {notification.recipient}'s notifications")
            self._fallback.send(notification)
            return
        key = notification.id if notification.id is not None else -1
        with self._lock:
            failed = self._failures.get(key)
        if failed is not None and self.monotonic() < failed[1]:
            raise PostDeferred(f"waiting to retry after Slack said {failed[2]}")
        text, message, card = self.render(notification)
        try:
            answer = self._client.chat_postMessage(
                channel=self._channel, text=text, blocks=message, unfurl_links=False
            )
        except (SlackClientError, OSError) as exc:
            self._failed(notification, key, _why(exc))
            raise
        with self._lock:
            self._failures.pop(key, None)
        keeper, posted = self._keeper(), str(answer["ts"])
        if card is not None:
            kind, record_id, state = card
            keeper.track(record_id, kind, str(answer["channel"]), posted, state)
        subject = _subject(notification)
        if subject is not None and notification.topic not in FIRST_CARD:
            keeper.refresh(subject, skip=posted)  # an escalation or a reversal shows on them

    def _failed(self, notification: Notification, key: int, error: str) -> None:
        with self._lock:
            tries, _, last = self._failures.get(key, (0, 0.0, ""))
            delay = min(self._retry_base * 2**tries, self._retry_max)
            self._failures[key] = (tries + 1, self.monotonic() + delay, error)
        if tries == 0 or error != last:
            log.error(
                "cannot post %s (notification %s) to %s: Slack says %s; retrying with backoff%s",
                notification.topic,
                notification.id,
                self._channel,
                error,
                " (is the bot in the channel? /invite it)" if "not_in_channel" in error else "",
            )

    def _keeper(self) -> CardKeeper:
        if self.keeper is None:
            raise RuntimeError("SlackNotifier.bind(flow) was not called")
        return self.keeper

    def render(
        self, notification: Notification
    ) -> tuple[str, list[blocks.Block], tuple[str, str, str] | None]:
        """The message for a staff notification and, for a card, (kind, record id, state)."""
        keeper = self._keeper()
        topic, payload = notification.topic, notification.payload
        now: datetime = keeper.flow.clock.now()
        if topic == "refund.review_requested":
            (text, shown), state = keeper.draw("refund", str(payload["refund_id"]))
            return text, shown, ("refund", str(payload["refund_id"]), state)
        if topic in ("ticket.opened", "ticket.reopened"):
            (text, shown), state = keeper.draw("ticket", str(payload["ticket_id"]))
            return text, shown, ("ticket", str(payload["ticket_id"]), state)
        if topic == "refund.escalated":
            return (*screens.payout_escalated(payload, self._leads()), None)
        if topic in ("deadline.reminder", "deadline.escalated"):
            text, notice = screens.deadline_notice(topic, payload, now, self._leads())
            subject = str(payload.get("subject_id", ""))
            if topic == "deadline.escalated" and payload.get("kind") == "refund_review":
                # a lead can decide right here, without scrolling back to the request
                (_, card), state = keeper.draw("refund_escalated", subject)
                return text, notice + card, ("refund_escalated", subject, state)
            return text, notice, None
        return (*screens.generic_notice(topic, payload), None)


def _subject(notification: Notification) -> str | None:
    payload = notification.payload
    for key in ("refund_id", "ticket_id", "subject_id"):
        value = payload.get(key)
        if isinstance(value, str) and value.startswith(("rfd", "tkt")):
            return value
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return f"{type(exc).__name__}: {exc}"
