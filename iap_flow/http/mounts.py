"""ASGI endpoints mounted beside the API: the stores' notification webhooks and the Slack bot.

``/webhooks/app-store`` and ``/webhooks/google-play`` are the adapters' own endpoints
(:func:`iap_flow.adapters.webhooks.asgi_app`, answering exactly as ``iap-flow webhooks``
does: Apple's JWS chain verified, every Google push's OIDC token checked). ``/slack/events``
is the bot's bolt app behind slack-bolt's ASGI adapter (Events API, slash command and
interactivity all post there, each request verified with the signing secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iap_flow.http.context import ASGIApp

WEBHOOK_PATHS = {"app_store": "/webhooks/app-store", "google_play": "/webhooks/google-play"}
SLACK_PATH = "/slack/events"
MAX_BODY = 1_000_000
"""Largest body a mounted endpoint is sent (a signed notification is a few kilobytes)."""


def store_mounts(stores: Mapping[str, Any]) -> dict[str, ASGIApp]:
    """The notification endpoint of each store ingest (``AppStoreNotifications``,
    ``GooglePlayNotifications``), by platform name as :data:`WEBHOOK_PATHS` says."""
    from iap_flow.adapters.webhooks import asgi_app

    unknown = sorted(set(stores) - set(WEBHOOK_PATHS))
    if unknown:
        raise ValueError(f"no webhook endpoint for {', '.join(unknown)}")
    return {WEBHOOK_PATHS[name]: asgi_app(notes.ingest_body) for name, notes in stores.items()}


def slack_mounts(bolt_app: Any) -> dict[str, ASGIApp]:
    """The bot's bolt ``App`` (:func:`iap_flow.bots.slack.app.build_app`) at
    :data:`SLACK_PATH`, each request dispatched on a worker thread as ``iap-flow slack`` does."""
    from iap_flow.bots.slack.serve import ThreadedSlackHandler

    handler: ASGIApp = ThreadedSlackHandler(bolt_app, SLACK_PATH)
    return {SLACK_PATH: handler}
