"""The bolt App: Slack payload -> core command -> Block Kit. No business rule lives here.

Acknowledgement comes first. The app runs with ``process_before_response=True``: each ack
function below does only what must happen before Slack's 3-second limit (ack, open a modal
while its trigger id is fresh, or run a quick core command whose refusal the modal must
show), and everything slower runs in a lazy listener on the app's thread pool. Every click
reaches the core with an idempotency key derived from the Slack action, so a repeated
delivery changes nothing twice; the core decides who may do what and refuses a second
decision (``AlreadyDecided``), and this module only shows what it said.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.roles import SYSTEM, Actor
from iap_flow.flow import Flow, open_flow
from iap_flow.ports import Notifier

from . import blocks, reads, screens
from .config import RoleResolver, SlackConfig, make_client
from .notifier import SlackNotifier

log = logging.getLogger(__name__)

Body = dict[str, Any]
EVENT_SOURCE = "slack"
"""The ``source`` under which Events API event ids are remembered in the store."""
_DONE = "iap_flow_done"
"""Context key an ack function sets when its core command succeeded (read by its lazy part)."""


class SlackBot:
    """The listeners, bound to one flow and one role mapping."""

    def __init__(self, flow: Flow, config: SlackConfig, roles: RoleResolver) -> None:
        self.flow = flow
        self.config = config
        self.roles = roles

    def register(self, app: App) -> None:
        """Attach every listener and the event de-duplication middleware to ``app``."""
        app.use(self.dedupe_events)
        app.command(self.config.command)(self.command)
        app.action(blocks.APPROVE)(ack=self.ack, lazy=[self.approve])
        app.action(blocks.REJECT)(ack=self.open_reject, lazy=[self.refuse_unmapped])
        app.view(blocks.REJECT_VIEW)(ack=self.submit_reject, lazy=[self.after_reject])
        app.action(blocks.REPLY)(ack=self.open_reply, lazy=[self.refuse_unmapped])
        app.view(blocks.REPLY_VIEW)(ack=self.submit_reply, lazy=[self.after_reply])
        app.action(blocks.RESOLVE)(ack=self.ack, lazy=[self.resolve])
        app.event("app_home_opened")(ack=self.ack, lazy=[self.publish_home])

    # -- middleware ---------------------------------------------------------------------------
    def dedupe_events(self, body: Body, next: Callable[[], None]) -> BoltResponse | None:
        """Skip an Events API delivery whose event id was processed before (Slack retries),
        recorded in the store so that several bot instances agree."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not self.flow.remember_event(SYSTEM, EVENT_SOURCE, str(event_id)):
            log.info("skipping event %s: already processed", event_id)
            return BoltResponse(status=200, body="")
        next()
        return None

    # -- acks ---------------------------------------------------------------------------------
    def ack(self, ack: Ack) -> None:
        """Acknowledge at once; the lazy listener does the work."""
        ack()

    def command(self, ack: Ack, command: Body) -> None:
        """``/iap order <id>``, ``/iap queue``, ``/iap help``: answered only to the caller."""
        words = str(command.get("text") or "").split()
        actor = self.roles.actor(str(command["user_id"]))
        if actor is None:
            ack(response_type="ephemeral", text=screens.not_staff_text())
            return
        now = self.flow.clock.now()
        try:
            if len(words) == 2 and words[0] == "order":
                text, shown = screens.order_blocks(reads.order_view(self.flow, actor, words[1]))
            elif words == ["queue"]:
                text = "Your queue"
                shown = screens.queue_blocks(reads.queue(self.flow, actor), now)
            else:
                ack(response_type="ephemeral", text=screens.help_text(self.config.command))
                return
        except IapFlowError as exc:
            ack(response_type="ephemeral", text=screens.error_text(exc))
            return
        ack(response_type="ephemeral", text=text, blocks=shown)

    def open_reject(self, ack: Ack, body: Body, client: WebClient) -> None:
        """Open the reason modal now, while the trigger id is valid (unmapped: see lazy)."""
        ack()
        self._open_modal(body, client, blocks.reject_modal)

    def open_reply(self, ack: Ack, body: Body, client: WebClient) -> None:
        """Open the answer modal now, while the trigger id is valid (unmapped: see lazy)."""
        ack()
        self._open_modal(body, client, blocks.reply_modal)

    def _open_modal(
        self, body: Body, client: WebClient, modal: Callable[[str, dict[str, str]], Body]
    ) -> None:
        if self.roles.actor(_user(body)) is not None:
            where = _where(body)  # the modal remembers which message to update afterwards
            client.views_open(trigger_id=body["trigger_id"], view=modal(where["id"], where))

    def submit_reject(self, ack: Ack, body: Body, view: Body, context: BoltContext) -> None:
        """Reject through the core; a refusal (reason too short, already decided) is shown
        in the modal."""
        meta = json.loads(view["private_metadata"])
        self._submit(
            ack,
            body,
            context,
            blocks.REASON,
            lambda actor, text: self.flow.refunds.reject(
                actor, meta["id"], reason=text, idempotency_key=_view_key(view)
            ),
        )

    def submit_reply(self, ack: Ack, body: Body, view: Body, context: BoltContext) -> None:
        """Answer the buyer through the core; a refusal is shown in the modal."""
        meta = json.loads(view["private_metadata"])
        self._submit(
            ack,
            body,
            context,
            blocks.ANSWER,
            lambda actor, text: self.flow.feedback.answer(
                actor, meta["id"], body=text, idempotency_key=_view_key(view)
            ),
        )

    def _submit(
        self,
        ack: Ack,
        body: Body,
        context: BoltContext,
        field: str,
        run: Callable[[Actor, str], object],
    ) -> None:
        actor = self.roles.actor(_user(body))
        if actor is None:
            ack(response_action="errors", errors={field: screens.not_staff_text()})
            return
        text = str(body["view"]["state"]["values"][field][field].get("value") or "")
        try:
            run(actor, text)
        except IapFlowError as exc:
            ack(response_action="errors", errors={field: screens.error_text(exc)})
            return
        context[_DONE] = True
        ack()

    # -- lazy listeners -------------------------------------------------------------------
    def approve(self, body: Body, client: WebClient) -> None:
        """Approve through the core (which pays out), then show the decision in place."""
        action = _action(body)

        def run(actor: Actor) -> None:
            self.flow.refunds.approve(actor, action["value"], idempotency_key=_action_key(body))
            self._show_refund(client, actor, action["value"], _where(body))

        self._act(body, client, run)

    def resolve(self, body: Body, client: WebClient) -> None:
        """Resolve the ticket through the core, then show it in place."""
        action = _action(body)

        def run(actor: Actor) -> None:
            self.flow.feedback.resolve(actor, action["value"], idempotency_key=_action_key(body))
            self._show_ticket(client, actor, action["value"], _where(body))

        self._act(body, client, run)

    def refuse_unmapped(self, body: Body, client: WebClient) -> None:
        """Tell someone without a staff role, privately, that nothing happened."""
        if self.roles.actor(_user(body)) is None:
            _whisper(client, body, screens.not_staff_text())

    def after_reject(self, body: Body, view: Body, context: BoltContext, client: WebClient) -> None:
        """Show the rejection on the review message."""
        if context.get(_DONE):
            meta = json.loads(view["private_metadata"])
            actor = self.roles.actor(_user(body))
            if actor is not None:
                self._show_refund(client, actor, meta["id"], meta)

    def after_reply(self, body: Body, view: Body, context: BoltContext, client: WebClient) -> None:
        """Show the answer in the ticket's thread and the new status on the card."""
        if not context.get(_DONE):
            return
        meta = json.loads(view["private_metadata"])
        actor = self.roles.actor(_user(body))
        if actor is None:
            return
        answer = str(view["state"]["values"][blocks.ANSWER][blocks.ANSWER].get("value") or "")
        if meta.get("channel") and meta.get("ts"):
            text, shown = blocks.answer_in_thread(actor.id, answer.strip())
            client.chat_postMessage(
                channel=meta["channel"], thread_ts=meta["ts"], text=text, blocks=shown
            )
        self._show_ticket(client, actor, meta["id"], meta)

    def publish_home(self, event: Body, client: WebClient) -> None:
        """App Home: the opener's queue, soonest deadline first, refreshed on every open."""
        if event.get("tab", "home") != "home":
            return
        user = str(event["user"])
        actor = self.roles.actor(user)
        if actor is None:
            client.views_publish(user_id=user, view=screens.home_refused())
            return
        now = self.flow.clock.now()
        client.views_publish(
            user_id=user, view=screens.home_view(reads.queue(self.flow, actor), now)
        )

    # -- helpers --------------------------------------------------------------------------
    def _act(self, body: Body, client: WebClient, run: Callable[[Actor], None]) -> None:
        actor = self.roles.actor(_user(body))
        if actor is None:
            _whisper(client, body, screens.not_staff_text())
            return
        try:
            run(actor)
        except IapFlowError as exc:
            _whisper(client, body, screens.error_text(exc))

    def _show_refund(
        self, client: WebClient, actor: Actor, refund_id: str, where: dict[str, str]
    ) -> None:
        view = reads.refund_view(self.flow, actor, refund_id)
        _update(client, where, *blocks.refund_card(view, self.flow.clock.now()))

    def _show_ticket(
        self, client: WebClient, actor: Actor, ticket_id: str, where: dict[str, str]
    ) -> None:
        view = reads.ticket_view(self.flow, actor, ticket_id)
        _update(client, where, *blocks.ticket_card(view, self.flow.clock.now()))


def build_app(
    flow: Flow,
    config: SlackConfig,
    *,
    client: WebClient | None = None,
    roles: RoleResolver | None = None,
    workers: int = 16,
    token_verification_enabled: bool = True,
) -> App:
    """The bolt App for ``flow``: listeners registered, Web API at ``config.api_url``.

    Without a signing secret (Socket Mode) HTTP requests are verified against a random
    secret, so every one of them is refused.
    """
    client = client or make_client(config)
    roles = roles or RoleResolver(config.roles, client, ttl_seconds=config.role_cache_seconds)
    app = App(
        name="iap-flow",
        client=client,
        signing_secret=config.signing_secret or secrets.token_hex(32),
        process_before_response=True,
        token_verification_enabled=token_verification_enabled,
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iap-slack"),
    )
    SlackBot(flow, config, roles).register(app)
    return app


def open_bot(
    config: SlackConfig,
    url: str,
    *,
    fallback: Notifier,
    client: WebClient | None = None,
    **flow_options: Any,
) -> tuple[Flow, App]:
    """Open a flow on ``url`` whose staff notifications go to the review channel (the rest to
    ``fallback``), and the bolt app that serves it. ``flow_options`` go to ``open_flow``."""
    client = client or make_client(config)
    notifier = SlackNotifier.from_config(config, fallback=fallback, client=client)
    flow = open_flow(url, notifier=notifier, **flow_options)
    notifier.bind(flow)
    return flow, build_app(flow, config, client=client)


# -- payload helpers ----------------------------------------------------------------------
def _user(body: Body) -> str:
    return str(body["user"]["id"])


def _action(body: Body) -> Body:
    action: Body = body["actions"][0]
    return action


def _where(body: Body) -> dict[str, str]:
    """Id, channel and timestamp of the message a button sits on (modal private metadata)."""
    container = body.get("container") or {}
    return {
        "id": str(_action(body)["value"]),
        "channel": str(container.get("channel_id") or (body.get("channel") or {}).get("id") or ""),
        "ts": str(container.get("message_ts") or (body.get("message") or {}).get("ts") or ""),
    }


def _action_key(body: Body) -> str:
    """One click, one key: Slack gives every click its own ``action_ts``."""
    action = _action(body)
    return f"slack:{action['action_id']}:{action['value']}:{_user(body)}:{action['action_ts']}"


def _view_key(view: Body) -> str:
    """One modal, one key: a submitted view id is never submitted again once it closed."""
    return f"slack:{view['callback_id']}:{view['id']}"


def _update(client: WebClient, where: dict[str, str], text: str, shown: list[Body]) -> None:
    if where.get("channel") and where.get("ts"):
        client.chat_update(channel=where["channel"], ts=where["ts"], text=text, blocks=shown)


def _whisper(client: WebClient, body: Body, text: str) -> None:
    """An ephemeral message to the clicker, in the channel of the message they clicked."""
    channel = _where(body)["channel"]
    if not channel:
        log.warning("no channel to answer %s in: %s", _user(body), text)
        return
    try:
        client.chat_postEphemeral(channel=channel, user=_user(body), text=text)
    except SlackApiError as exc:
        log.error("cannot tell %s %r: %s", _user(body), text, exc)
