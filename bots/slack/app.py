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

import attrs
from slack_bolt import Ack, App, BoltContext, BoltResponse, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from iap_flow.config import Config, open_flow_from_config
from iap_flow.domain.errors import (
    AlreadyDecided,
    ConflictError,
    IapFlowError,
    PermissionDenied,
)
from iap_flow.domain.roles import SYSTEM, Actor, check
from iap_flow.flow import DEFAULT_URL, Flow
from iap_flow.ports import Notifier

from . import blocks, payloads, reads, screens
from .cards import open_cards
from .config import RoleResolver, SlackConfig, make_client
from .notifier import CardKeeper, SlackNotifier

log = logging.getLogger(__name__)

Body = dict[str, Any]
EVENT_SOURCE = "slack"
"""The ``source`` under which Events API event ids are remembered in the store."""
_DONE = "iap_flow_done"
"""Context key an ack function sets when its core command succeeded (read by its lazy part)."""


class SlackBot:
    """The listeners, bound to one flow, one role mapping and the cards of its records."""

    def __init__(
        self, flow: Flow, config: SlackConfig, roles: RoleResolver, keeper: CardKeeper
    ) -> None:
        self.flow = flow
        self.config = config
        self.roles = roles
        self.keeper = keeper

    def register(self, app: App) -> None:
        """Attach every listener and the event de-duplication middleware to ``app``."""
        app.use(self.dedupe_events)
        app.command(self.config.command)(ack=self.command, lazy=[self.answer_command])
        app.action(blocks.APPROVE)(ack=self.ack, lazy=[self.approve])
        app.action(blocks.REJECT)(ack=self.ack, lazy=[self.open_reject])
        app.view(blocks.REJECT_VIEW)(ack=self.submit_reject, lazy=[self.after_decision])
        app.action(blocks.REPLY)(ack=self.ack, lazy=[self.open_reply])
        app.view(blocks.REPLY_VIEW)(ack=self.submit_reply, lazy=[self.after_reply])
        app.action(blocks.RESOLVE)(ack=self.ack, lazy=[self.resolve])
        app.event("app_home_opened")(ack=self.ack, lazy=[self.publish_home])

    # -- middleware ---------------------------------------------------------------------------
    def dedupe_events(self, body: Body, next: Callable[[], None]) -> BoltResponse | None:
        """Skip an Events API delivery whose event id was processed before (Slack retries),
        recorded in the store so that several bot instances agree."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not self.flow.record_event(SYSTEM, EVENT_SOURCE, str(event_id)):
            log.info("skipping event %s: already processed", event_id)
            return BoltResponse(status=200, body="")
        next()
        return None

    # -- acks ---------------------------------------------------------------------------------
    def ack(self, ack: Ack) -> None:
        """Acknowledge at once; the lazy listener does the work (nothing slow before this)."""
        ack()

    def command(self, ack: Ack, command: Body, context: BoltContext) -> None:
        """``/iap order <id>``, ``/iap queue [page]``, ``/iap help``: answered to the caller.
        Help and refusals come in the ack; lookups are acked at once and answered through
        the command's ``response_url`` (a long queue can take a while to read)."""
        words = str(command.get("text") or "").split()
        if self.roles.actor(str(command["user_id"])) is None:
            ack(response_type="ephemeral", text=screens.not_staff_text())
            return
        lookup = len(words) == 2 and words[0] == "order"
        listing = words[:1] == ["queue"] and len(words) <= 2
        if not (lookup or listing):
            ack(response_type="ephemeral", text=screens.help_text(self.config.command))
            return
        context[_DONE] = True
        ack()

    def answer_command(self, command: Body, context: BoltContext, respond: Respond) -> None:
        """The lookup behind an acked slash command, sent to its ``response_url``."""
        if not context.get(_DONE):
            return
        words = str(command.get("text") or "").split()
        actor = self.roles.actor(str(command["user_id"]))
        if actor is None:
            return
        now = self.flow.clock.now()
        try:
            if words[0] == "order":
                text, shown = screens.order_blocks(reads.order_view(self.flow, actor, words[1]))
            else:
                page = payloads.page(words[1] if len(words) == 2 else "1")
                queue = reads.queue_page(self.flow, actor, page=page, per_page=screens.PER_PAGE)
                text = f"Your queue ({queue.total} waiting)"
                shown = screens.queue_page_blocks(queue, now, self.config.command)
        except IapFlowError as exc:
            respond(response_type="ephemeral", text=screens.error_text(exc))
            return
        respond(response_type="ephemeral", text=text, blocks=shown)

    def submit_reject(self, ack: Ack, body: Body, view: Body, context: BoltContext) -> None:
        """Reject through the core; a refusal (reason too short, already decided) is shown
        in the modal."""
        meta = json.loads(view["private_metadata"])
        self._submit(
            ack,
            body,
            context,
            blocks.REASON,
            meta["id"],
            lambda actor, text: self.flow.refunds.reject(
                actor, meta["id"], reason=text, idempotency_key=payloads.view_key(view)
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
            meta["id"],
            lambda actor, text: self.flow.feedback.answer(
                actor, meta["id"], body=text, idempotency_key=payloads.view_key(view)
            ),
        )

    def _submit(
        self,
        ack: Ack,
        body: Body,
        context: BoltContext,
        field: str,
        record_id: str,
        run: Callable[[Actor, str], object],
    ) -> None:
        actor = self.roles.actor(payloads.user(body))
        if actor is None:
            ack(response_action="errors", errors={field: screens.not_staff_text()})
            return
        text = str(body["view"]["state"]["values"][field][field].get("value") or "")
        try:
            run(actor, text)
        except IapFlowError as exc:
            exc = self._explain(exc, record_id)
            ack(response_action="errors", errors={field: screens.error_text(exc, mrkdwn=False)})
            return
        context[_DONE] = True
        ack()

    # -- lazy listeners -------------------------------------------------------------------
    def open_reject(self, body: Body, client: WebClient) -> None:
        """Open the reason modal for someone who may reject; tell anyone else why not."""
        self._open_modal(body, client, "refund.reject", blocks.reject_modal)

    def open_reply(self, body: Body, client: WebClient) -> None:
        """Open the answer modal for someone who may answer; tell anyone else why not."""
        self._open_modal(body, client, "ticket.answer", blocks.reply_modal)

    def _open_modal(
        self,
        body: Body,
        client: WebClient,
        action: str,
        modal: Callable[[str, dict[str, str]], Body],
    ) -> None:
        actor = self.roles.actor(payloads.user(body))
        if actor is None:
            payloads.whisper(client, body, screens.not_staff_text())
            return
        try:
            check(actor, action)
        except PermissionDenied as exc:
            payloads.whisper(client, body, screens.error_text(exc))
            return
        where = payloads.where(body)  # the modal remembers which message to update afterwards
        try:
            client.views_open(trigger_id=body["trigger_id"], view=modal(where["id"], where))
        except SlackApiError as exc:
            log.error("cannot open the %s modal for %s: %s", action, payloads.user(body), exc)
            payloads.whisper(
                client, body, "Slack would not open the form in time; please click again."
            )

    def approve(self, body: Body, client: WebClient) -> None:
        """Approve through the core (which pays out), then show the decision on every card."""
        action = payloads.action(body)

        def run(actor: Actor) -> None:
            self.flow.refunds.approve(
                actor, action["value"], idempotency_key=payloads.action_key(body)
            )

        self._act(body, client, run)

    def resolve(self, body: Body, client: WebClient) -> None:
        """Resolve the ticket through the core, then show it on every card."""
        action = payloads.action(body)

        def run(actor: Actor) -> None:
            self.flow.feedback.resolve(
                actor, action["value"], idempotency_key=payloads.action_key(body)
            )

        self._act(body, client, run)

    def after_decision(self, body: Body, view: Body, context: BoltContext) -> None:
        """Show the rejection on every card of the refund."""
        if context.get(_DONE):
            meta = json.loads(view["private_metadata"])
            self.keeper.refresh(meta["id"], meta)

    def after_reply(self, body: Body, view: Body, context: BoltContext, client: WebClient) -> None:
        """Show the answer in the ticket's thread and the new status on every card."""
        if not context.get(_DONE):
            return
        meta = json.loads(view["private_metadata"])
        answer = str(view["state"]["values"][blocks.ANSWER][blocks.ANSWER].get("value") or "")
        if meta.get("channel") and meta.get("ts"):
            text, shown = blocks.answer_in_thread(payloads.user(body), answer.strip())
            client.chat_postMessage(
                channel=meta["channel"], thread_ts=meta["ts"], text=text, blocks=shown
            )
        self.keeper.refresh(meta["id"], meta)

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
        queue = reads.queue_page(self.flow, actor, page=1, per_page=screens.HOME_ITEMS)
        client.views_publish(user_id=user, view=screens.home_view(queue, now, self.config.command))

    # -- helpers --------------------------------------------------------------------------
    def _act(self, body: Body, client: WebClient, run: Callable[[Actor], None]) -> None:
        actor = self.roles.actor(payloads.user(body))
        if actor is None:
            payloads.whisper(client, body, screens.not_staff_text())
            return
        record_id = str(payloads.action(body)["value"])
        with self.keeper.deciding(record_id):  # a click here at the same time waits for us
            try:
                run(actor)
            except IapFlowError as exc:
                payloads.whisper(client, body, screens.error_text(self._explain(exc, record_id)))
                if isinstance(exc, ConflictError):  # lost: bring the cards the winner did not
                    self.keeper.refresh(record_id, payloads.where(body), stale_only=True)
                return  # refused: nothing changed, the cards are right as they are
            self.keeper.refresh(record_id, payloads.where(body))  # every card shows the truth

    def _explain(self, exc: IapFlowError, record_id: str) -> IapFlowError:
        """A lost race (the record moved under us) said as who decided it, when we can tell."""
        lost = isinstance(exc, ConflictError) and not isinstance(exc, AlreadyDecided)
        if lost and record_id.startswith("rfd"):
            refund = self.flow.refunds.get(SYSTEM, record_id)
            if refund.decided_by is not None or refund.status not in blocks.OPEN:
                return AlreadyDecided(
                    refund_id=refund.id, state=str(refund.status), decided_by=refund.decided_by
                )
        return exc


def build_app(
    flow: Flow,
    config: SlackConfig,
    *,
    client: WebClient | None = None,
    roles: RoleResolver | None = None,
    keeper: CardKeeper | None = None,
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
    SlackBot(flow, config, roles, keeper or CardKeeper(flow, client)).register(app)
    return app


@attrs.frozen
class Bot:
    """What ``iap-flow slack`` runs: the flow, the bolt app, the card keeper."""

    flow: Flow
    app: App
    keeper: CardKeeper
    notifier: SlackNotifier
    roles: RoleResolver


def open_bot(
    config: SlackConfig,
    source: Config | str | None = None,
    *,
    fallback: Notifier | None = None,
    client: WebClient | None = None,
    **flow_options: Any,
) -> tuple[Flow, App]:
    """Open the flow described by ``source`` (a configuration, or a store URL) with the
    staff's notifications going to the review channel, and the bolt app that serves it.

    With a URL, buyers' notifications go to ``fallback`` (none: this bot leaves them to the
    backend). ``flow_options`` go to :func:`~iap_flow.config.open_flow_from_config`.
    """
    bot = open_bot_parts(config, source, fallback=fallback, client=client, **flow_options)
    return bot.flow, bot.app


def open_bot_parts(
    config: SlackConfig,
    source: Config | str | None = None,
    *,
    fallback: Notifier | None = None,
    client: WebClient | None = None,
    **flow_options: Any,
) -> Bot:
    """Like :func:`open_bot`, returning the card keeper too."""
    client = client or make_client(config)
    named: dict[str, Notifier] = {}
    if source is None or isinstance(source, str):
        destinations = {"staff": "slack", "buyer": "fallback" if fallback else "elsewhere"}
        source = Config({"store": {"url": source or DEFAULT_URL}, "notifications": destinations})
        if fallback is not None:
            named["fallback"] = fallback
    url = flow_options.get("url") or source.store_url
    notifier = SlackNotifier.from_config(config, client=client)
    named["slack"] = notifier
    flow = open_flow_from_config(source, notifiers=named, **flow_options)
    keeper = notifier.bind(flow)
    keeper.cards = open_cards(url)
    roles = RoleResolver(config.roles, client, ttl_seconds=config.role_cache_seconds)
    app = build_app(flow, config, client=client, roles=roles, keeper=keeper)
    return Bot(flow, app, keeper, notifier, roles)
