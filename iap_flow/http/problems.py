"""Errors as RFC 9457 ``application/problem+json``: one stable ``code`` per error type.

``detail`` is what may be shown to the caller: a buyer gets the message of errors meant for
them (:class:`~iap_flow.domain.errors.BuyerFacingError`, their own malformed input, an id
they sent that does not exist) and a fixed sentence for the rest; staff get the full message.
The internal detail is always logged with the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import msgspec

from iap_flow.domain.errors import (
    BuyerFacingError,
    IapFlowError,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
)
from iap_flow.domain.roles import Actor, Role
from iap_flow.http.schemas import Problem

log = logging.getLogger("iap_flow.http")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://iap-flow.dev/problems/"


class Unauthenticated(IapFlowError):
    """No credentials, or credentials that could not be verified."""

    code = "unauthenticated"


class Forbidden(IapFlowError):
    """The caller is authenticated but this part of the API is not for their role."""

    code = "forbidden"


STATUS: Mapping[str, int] = {
    "malformed_request": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "permission_denied": 403,
    "approval_limit_exceeded": 403,
    "not_found": 404,
    "route_not_found": 404,
    "method_not_allowed": 405,
    "transition_not_allowed": 409,
    "conflict": 409,
    "concurrent_modification": 409,
    "already_decided": 409,
    "operation_in_progress": 409,
    "refund_not_allowed": 409,
    "product_unavailable": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_input": 422,
    "notification_rejected": 422,
    "idempotency_key_reused": 422,
    "internal_error": 500,
    "play_api_error": 502,
    "platform_unavailable": 503,
    "store_error": 503,
    "store_fault": 503,
    "store_busy": 503,
    "store_unavailable": 503,
    "store_read_only": 503,
    "store_full": 503,
    "store_corrupt": 503,
    "schema_too_new": 503,
    "commit_outcome_unknown": 503,
    "purchase_not_owned": 403,
}
"""Problem code -> HTTP status. An error type without a row here answers 400."""

TITLES: Mapping[str, str] = {
    "malformed_request": "The request could not be read",
    "unauthenticated": "Sign in again",
    "forbidden": "This is not available to you",
    "permission_denied": "This is not available to you",
    "approval_limit_exceeded": "A support lead must decide this",
    "not_found": "Not found",
    "route_not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "transition_not_allowed": "This cannot be done now",
    "conflict": "Someone changed this at the same time",
    "concurrent_modification": "Someone changed this at the same time",
    "already_decided": "This was already decided",
    "operation_in_progress": "The same request is still being processed; retry shortly",
    "refund_not_allowed": "A refund cannot be requested",
    "product_unavailable": "This product is not on sale",
    "payload_too_large": "The request is too large",
    "unsupported_media_type": "Send JSON",
    "invalid_input": "Some of the input is not valid",
    "notification_rejected": "The store purchase could not be verified",
    "idempotency_key_reused": "This Idempotency-Key was used for another request",
    "internal_error": "Something went wrong on our side",
    "play_api_error": "Google Play did not answer as expected; try again shortly",
    "platform_unavailable": "The payment platform did not answer; try again shortly",
    "store_error": "The service is unavailable; try again shortly",
    "store_fault": "The service is unavailable; try again shortly",
    "store_busy": "The service is busy; try again shortly",
    "store_unavailable": "The service is unavailable; try again shortly",
    "store_read_only": "The service is unavailable; try again shortly",
    "store_full": "The service is unavailable; try again shortly",
    "store_corrupt": "The service is unavailable; try again shortly",
    "schema_too_new": "The service is unavailable; try again shortly",
    "commit_outcome_unknown": "It is not known whether this went through; retry with the same Idempotency-Key",
    "purchase_not_owned": "This purchase belongs to another account",
}

_SHOWN_TO_BUYERS = (BuyerFacingError, InvalidInput, NotFound, TransitionNotAllowed, Unauthenticated)


def status_for(code: str) -> int:
    return STATUS.get(code, 400)


def problem(
    code: str,
    detail: str,
    *,
    path: str,
    request_id: str,
    field: str | None = None,
    status: int | None = None,
) -> Problem:
    return Problem(
        type=TYPE_BASE + code,
        title=TITLES.get(code, "The request was refused"),
        status=status or status_for(code),
        code=code,
        detail=detail,
        instance=path,
        request_id=request_id,
        field=field,
    )


def from_error(exc: IapFlowError, actor: Actor | None, *, path: str, request_id: str) -> Problem:
    """The problem for a typed error, with ``detail`` chosen for who is asking."""
    code = exc.code
    staff = actor is not None and actor.role is not Role.BUYER
    shown = str(exc) if staff or isinstance(exc, _SHOWN_TO_BUYERS) else TITLES.get(code, "")
    field = exc.field if isinstance(exc, InvalidInput) else None
    log.info("request %s refused: %s: %s", request_id, code, exc)
    return problem(
        code, shown or TITLES.get(code, code), path=path, request_id=request_id, field=field
    )


def encode(p: Problem) -> bytes:
    """The JSON body; ``field`` is left out when unset."""
    body: dict[str, Any] = attrs.asdict(p)
    if body["field"] is None:
        del body["field"]
    return msgspec.json.encode(body)
