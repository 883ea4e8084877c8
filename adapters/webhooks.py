"""What the store adapters share: the typed refusal, the result of one ingested notification,
applying a notification once, and a small endpoint around an ingest function, as WSGI
(:func:`wsgi_app`, what ``iap-flow webhooks`` serves) or ASGI (:func:`asgi_app`, what
``iap-flow serve`` mounts); both answer through one function, so they refuse alike.

The endpoint is optional: the SDK calls (``ingest(...)``) work without it. It answers
200 when the notification was applied (or was a duplicate, or needed nothing, or is of a kind
this version does not know), 400 when it was refused (the sender should not retry a forged
or malformed payload, but may), 403 when the push was not authenticated, 503 when it could
not be checked or confirmed now (an OCSP responder or the store's API out of reach) and 500
when applying it failed for another reason that may pass (a product missing from the
catalogue): the sender retries later.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import attrs

from iap_flow import SYSTEM, Flow, IapFlowError, PlatformUnavailable

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


def already_applied(flow: Flow, source: str, notification_id: str) -> IngestResult | None:
    """What the first delivery of this notification did, if one was applied (one read, no
    call to the store's API): a duplicate is recognised before anything else is done."""
    first = flow.event_result(SYSTEM, source, notification_id)
    if first is None:
        return None
    return IngestResult(**{**first, "duplicate": True})


def apply_once(
    flow: Flow,
    source: str,
    notification_id: str,
    kind: str,
    apply: Callable[[], Applied],
    *,
    checked: bool = False,
) -> IngestResult:
    """Apply a verified notification at most once.

    A notification applied before returns its first result at once. Otherwise ``apply`` runs
    core commands keyed by the notification id (so two processes racing on one delivery
    change things once), then the id is remembered with its result for duplicates.
    ``checked`` says the caller just asked :func:`already_applied`.
    """
    seen = None if checked else already_applied(flow, source, notification_id)
    if seen is not None:
        return seen
    outcome, order_id, refund_id = apply()
    result = IngestResult(source, notification_id, kind, outcome, order_id, refund_id)
    # Remembered with its result in one transaction; a crash before it costs a repeat of
    # ``apply`` (idempotent), nothing more.
    try:
        first = flow.record_event(SYSTEM, source, notification_id, result.as_dict())
    except IapFlowError:
        if already_applied(flow, source, notification_id) is None:
            raise
        first = False
    return result if first else attrs.evolve(result, duplicate=True)


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
    503: "503 Service Unavailable",
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


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def asgi_app(ingest: Ingest) -> AsgiApp:
    """The same endpoint as :func:`wsgi_app`, as an ASGI application: the request becomes a
    WSGI-style environ (method, query string, ``HTTP_*`` headers, the body) and ``ingest``
    runs on a worker thread (it calls the store's API and the store), never on the loop."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        environ = _environ(scope)
        body = b""
        declared = environ.get("CONTENT_LENGTH", "")
        fits = not declared or (declared.isdigit() and int(declared) <= MAX_BODY)
        if environ["REQUEST_METHOD"] == "POST" and fits:
            body = await _read(receive, MAX_BODY + 1)
            environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        status, out = await asyncio.to_thread(_handle, ingest, environ)
        data = json.dumps(out).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


def _environ(scope: Scope) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "PATH_INFO": scope["path"],
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
    }
    for key, value in scope.get("headers", ()):
        name = bytes(key).decode("latin-1").upper().replace("-", "_")
        name = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + name
        text = bytes(value).decode("latin-1")
        environ[name] = f"{environ[name]},{text}" if name in environ else text
    return environ


async def _read(receive: Receive, limit: int) -> bytes:
    """The request body, stopping once it passes ``limit`` bytes (then too large)."""
    chunks, size = [], 0
    while size < limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


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
    except PlatformUnavailable as exc:  # could not check or confirm it now: retry later
        log.warning("store notification not applied yet: %s", exc)
        return 503, {"error": str(exc)}
    except Exception as exc:  # any other failure: answer 500 so the store retries later
        log.exception("could not apply a store notification")
        return 500, {"error": f"{type(exc).__name__}: {exc}"}
