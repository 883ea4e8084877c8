"""A core :class:`~iap_flow.ports.Notifier` that posts staff notifications to the review channel.

Notifications addressed to staff (``support``, ``support_agent``, ``support_lead``) become
messages in the review channel: a refund card with Approve / Reject, a feedback card with
Reply / Resolve, deadline reminders, and escalations that mention the support leads. Anything
addressed to a buyer goes to the ``fallback`` notifier. Each notification is posted once: the
core's outbox hands it over once and marks it delivered (the sweep's reminders and
escalations are themselves made once per deadline); a failed post raises, so the outbox keeps
it and a later delivery retries it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient

from iap_flow.domain.models import Notification
from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow
from iap_flow.ports import Notifier

from . import blocks, reads, screens
from .config import RoleResolver, SlackConfig, make_client

STAFF_RECIPIENTS = frozenset({"support", "support_agent", "support_lead"})


class SlackNotifier:
    """Posts staff notifications to one channel; hands the rest to ``fallback``.

    The flow is bound after it is opened (``notifier.bind(flow)``): the cards read the
    refund, order and ticket behind each notification through the core.
    """

    def __init__(
        self,
        client: WebClient,
        channel: str,
        *,
        fallback: Notifier,
        lead_mention: Callable[[], str] = lambda: "support leads",
    ) -> None:
        self._client = client
        self._channel = channel
        self._fallback = fallback
        self._leads = lead_mention
        self._flow: Flow | None = None

    @classmethod
    def from_config(
        cls, config: SlackConfig, *, fallback: Notifier, client: WebClient | None = None
    ) -> SlackNotifier:
        """The notifier for a configured workspace: embed it in an app backend's
        ``open_flow(notifier=...)`` so review requests reach Slack as they are made."""
        client = client or make_client(config)
        roles = RoleResolver(config.roles, client, ttl_seconds=config.role_cache_seconds)
        return cls(
            client, config.review_channel, fallback=fallback, lead_mention=roles.lead_mention
        )

    def bind(self, flow: Flow) -> None:
        """Attach the flow whose records the cards show."""
        self._flow = flow

    def send(self, notification: Notification) -> None:
        """Post a staff notification to the review channel, or pass a buyer's on."""
        if notification.recipient not in STAFF_RECIPIENTS:
            self._fallback.send(notification)
            return
        text, message = self.render(notification)
        self._client.chat_postMessage(
            channel=self._channel, text=text, blocks=message, unfurl_links=False
        )

    def render(self, notification: Notification) -> blocks.Message:
        """The message for a staff notification."""
        flow = self._flow
        if flow is None:
            raise RuntimeError("SlackNotifier.bind(flow) was not called")
        topic, payload = notification.topic, notification.payload
        now: datetime = flow.clock.now()
        if topic == "refund.review_requested":
            return blocks.refund_card(reads.refund_view(flow, SYSTEM, payload["refund_id"]), now)
        if topic in ("ticket.opened", "ticket.reopened"):
            return blocks.ticket_card(reads.ticket_view(flow, SYSTEM, payload["ticket_id"]), now)
        if topic == "refund.escalated":
            return screens.payout_escalated(payload, self._leads())
        if topic in ("deadline.reminder", "deadline.escalated"):
            text, notice = screens.deadline_notice(topic, payload, now, self._leads())
            subject = str(payload.get("subject_id", ""))
            if topic == "deadline.escalated" and payload.get("kind") == "refund_review":
                # a lead can decide right here, without scrolling back to the request
                _, card = blocks.refund_card(
                    reads.refund_view(flow, SYSTEM, subject), now, "Escalated refund request"
                )
                return text, notice + card
            return text, notice
        return screens.generic_notice(topic, payload)
