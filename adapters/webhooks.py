"""What the store adapters share: the typed refusal, the result of one ingested notification,
applying a notification once, and a small WSGI endpoint around an ingest function.

The endpoint is optional: the SDK calls (``ingest(...)``) work without it. It answers
200 when the notification was applied (or was a duplicate, or needed nothing), 400 when it
was refused (the sender should not retry a forged or malformed payload, but may), 403 when
the push was not authenticated, and 500 when applying it failed for a reason that may pass
(the store was down, a product is missing from the catalogue): the sender retries later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from iap_flow import SYSTEM, Flow, IapFlowError

log = logging.getLogger("iap_flow.adapters.webhooks")

MAX_BODY = 1_000_000
"""Largest request body the endpoint reads (a signed notification is a few kilobytes)."""


class NotificationRejected(IapFlowError, ValueError):
    """A store notification failed verification or is malformed; nothing was changed."""

    code = "notification_rejected"

    def __init__(self, message: str, *, source: str, reason: str) -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason


@attrs.frozen
class IngestResult:
    """What the flow did with one store notification. A duplicate delivery returns what the
    first delivery did, with ``duplicate`` set."""

    source: str
    """``app_store`` or ``google_play``."""
    notification_id: str
    """The platform's id for the notification (notificationUUID, Pub/Sub messageId)."""
    kind: str
    """The platform's notification type, e.g. ``ONE_TIME_CHARGE``."""
    outcome: str
    """``paid``, ``review_opened``, ``refunded``, ``declined``, ``reversed`` or ``ignored``."""
    order_id: str | None = None
    refund_id: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


Applied = tuple[str, str | None, str | None]
"""``(outcome, order_id, refund_id)`` returned by an adapter's mapping of one notification."""


def apply_once(
    flow: Flow, source: str, notification_id: str, kind: str, apply: Callable[[], Applied]
) -> IngestResult:
    """Apply a verified notification at most once.

    ``apply`` runs core commands keyed by the notification id, so a repeat changes nothing
    and returns the first result; the id is then remembered, which tells a duplicate apart.
    """
    outcome, order_id, refund_id = apply()
    first = flow.remember_event(SYSTEM, source, notification_id)
    return IngestResult(source, notification_id, kind, outcome, order_id, refund_id, not first)


def rejected(source: str, reason: str, message: str) -> NotificationRejected:
    """Log a refused notification and build the error to raise."""
    log.warning("refused %s notification (%s): %s", source, reason, message)
    return NotificationRejected(message, source=source, reason=reason)


Ingest = Callable[[bytes, Mapping[str, Any]], IngestResult]
"""An adapter's endpoint handler: request body and WSGI environ -> result."""
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    413: "413 Payload Too Large",
    405: "405 Method Not Allowed",
    500: "500 Internal Server Error",
}


def wsgi_app(ingest: Ingest) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI application that feeds POSTed notifications to ``ingest``; mount it anywhere."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, body = _handle(ingest, environ)
        data = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(_STATUS[status], headers)
        return [data]

    return app


def _handle(ingest: Ingest, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if environ.get("REQUEST_METHOD") != "POST":
        return 405, {"error": "POST a notification"}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= MAX_BODY:
        return 413, {"error": f"body must be at most {MAX_BODY} bytes"}
    body = environ["wsgi.input"].read(length)
    try:
        return 200, ingest(body, environ).as_dict()
    except NotificationRejected as exc:
        return (403 if exc.reason == "unauthenticated" else 400), {"error": str(exc)}
    except Exception as exc:  # any other failure: answer 500 so the store retries later
        log.exception("could not apply a store notification")
        return 500, {"error": f"{type(exc).__name__}: {exc}"}
