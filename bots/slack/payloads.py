"""Reading Slack payloads: who clicked, on which message, with which idempotency key; and
the ephemeral answer to the clicker."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from iap_flow.domain.errors import InvalidInput

log = logging.getLogger("iap_flow.bots.slack.app")

Body = dict[str, Any]


def user(body: Body) -> str:
    return str(body["user"]["id"])


def action(body: Body) -> Body:
    action: Body = body["actions"][0]
    return action


def where(body: Body) -> dict[str, str]:
    """Id, channel and timestamp of the message a button sits on (modal private metadata)."""
    container = body.get("container") or {}
    return {
        "id": str(action(body)["value"]),
        "channel": str(container.get("channel_id") or (body.get("channel") or {}).get("id") or ""),
        "ts": str(container.get("message_ts") or (body.get("message") or {}).get("ts") or ""),
    }


def action_key(body: Body) -> str:
    """One click, one key: Slack gives every click its own ``action_ts``."""
    clicked = action(body)
    return f"slack:{clicked['action_id']}:{clicked['value']}:{user(body)}:{clicked['action_ts']}"


def view_key(view: Body) -> str:
    """One modal, one key: a submitted view id is never submitted again once it closed."""
    return f"slack:{view['callback_id']}:{view['id']}"


def page(word: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise InvalidInput(f"a queue page is a number from 1, got {word!r}", field="page")
    return int(word)


def whisper(client: WebClient, body: Body, text: str) -> None:
    """An ephemeral message to the clicker, in the channel of the message they clicked."""
    channel = where(body)["channel"]
    if not channel:
        log.warning("no channel to answer %s in: %s", user(body), text)
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user(body), text=text)
    except SlackApiError as exc:
        log.error("cannot tell %s %r: %s", user(body), text, exc)
