"""What every route handler shares: the flow, who is calling, and the error conventions."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Annotated, Any, TypeVar, cast

import attrs
from litestar import Request, get, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from iap_flow.domain.errors import NotFound, PermissionDenied
from iap_flow.domain.roles import Actor, Role
from iap_flow.flow import Flow
from iap_flow.http.auth import Authenticator, Headers
from iap_flow.http.problems import MEDIA_TYPE, STATUS, TITLES, Forbidden, Unauthenticated
from iap_flow.http.schemas import NOT_SPACE, Problem

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Req = Request[Any, Any, Any]

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=200,
        min_length=1,
        pattern=NOT_SPACE,
        description="Repeat a request with the same key to get the first result back.",
    ),
]

MAX_ID = 128
"""Longest id in a path, as the routes' path parameters document it."""
BUYER_SECURITY: list[dict[str, list[str]]] = [{"buyerBearer": []}]
STAFF_SECURITY: list[dict[str, list[str]]] = [{"staffApiKey": []}]


@attrs.define
class Service:
    """The flow, the two authenticators and the stores' ingests, given to every route."""

    flow: Flow
    buyers: Authenticator
    staff: Authenticator
    stores: Mapping[str, Any] = attrs.field(factory=dict)
    """``app_store`` / ``google_play`` notification ingests, by platform name."""

    def buyer(self, request: Request[Any, Any, Any]) -> Actor:
        actor = self._who(self.buyers, request, "a buyer's bearer token")
        if actor.role is not Role.BUYER:
            raise Forbidden("this route is for buyers")
        return actor

    def staff_member(self, request: Request[Any, Any, Any]) -> Actor:
        actor = self._who(self.staff, request, "a staff API key (X-Api-Key)")
        if actor.role is Role.BUYER:
            raise Forbidden("this route is for staff")
        return actor

    @staticmethod
    def _who(auth: Authenticator, request: Request[Any, Any, Any], what: str) -> Actor:
        actor = auth(cast(Headers, request.headers))
        if actor is None:
            raise Unauthenticated(f"this route needs {what}")
        request.scope["iap_actor"] = actor  # type: ignore[typeddict-unknown-key]
        return actor


def scoped(actor: Actor, key: str | None) -> str | None:
    """The caller's ``Idempotency-Key`` as the SDK's key: scoped to the caller, so two buyers
    who pick the same key neither collide nor learn of each other's requests."""
    if key is None:
        return None
    return "http:" + hashlib.sha256(f"{actor.role}\0{actor.id}\0{key}".encode()).hexdigest()


def owned(actor: Actor, kind: str, id: str, call: Callable[[], T]) -> T:
    """Run ``call``; a buyer refused another buyer's record learns only that it does not exist."""
    try:
        return call()
    except PermissionDenied as exc:
        if actor.role is Role.BUYER:
            raise NotFound(kind, id) from exc
        raise


def errors(*codes: str) -> dict[int, ResponseSpec]:
    """The documented problem responses for a route: these codes plus the common ones."""
    common = ("unauthenticated", "payload_too_large")
    out: dict[int, list[str]] = {}
    for code in (*common, *codes):
        out.setdefault(STATUS[code], []).append(code)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=MEDIA_TYPE,
            description="; ".join(f"`{c}`: {TITLES[c]}" for c in names),
            generate_examples=False,
        )
        for status, names in sorted(out.items())
    }


def op(method: Callable[..., Any], path: str, **options: Any) -> Callable[[Any], Any]:
    """``method(path, ...)`` with the operation id and summary taken from the function, so
    the OpenAPI document names each operation after its handler."""

    def wrap(fn: Callable[..., Any]) -> Any:
        doc = (fn.__doc__ or "").strip()
        return method(
            path,
            operation_id=fn.__name__,
            summary=doc.split("\n", 1)[0] or fn.__name__.replace("_", " "),
            description=doc or None,
            **options,
        )(fn)

    return wrap


@attrs.frozen
class Routes:
    """One group of routes: whose they are (buyers or staff: the authenticator, the security
    scheme, the common problems), the tag, and whether blocking calls run in the pool.

    ``routes.get(path, *codes)`` / ``routes.post(path, *codes)`` declare a route documenting
    those problem codes; :meth:`run` is the body every route shares: read the caller, scope
    their ``Idempotency-Key``, call one command, and (for a buyer) let another buyer's record
    be not found."""

    svc: Service
    threads: bool
    staff: bool
    tag: str

    @property
    def flow(self) -> Flow:
        return self.svc.flow

    def get(self, path: str, *codes: str, **options: Any) -> Callable[[Any], Any]:
        return self._route(get, path, codes, options)

    def post(
        self, path: str, *codes: str, status: int = 200, **options: Any
    ) -> Callable[[Any], Any]:
        return self._route(post, path, codes, {"status_code": status, **options})

    def _route(
        self, method: Callable[..., Any], path: str, codes: tuple[str, ...], options: dict[str, Any]
    ) -> Callable[[Any], Any]:
        tags = options.pop("tags", [self.tag])

        def wrap(fn: Callable[..., Any]) -> Any:
            # A route that reads nothing from the request (no path, query, header or body
            # parameter) cannot be sent a malformed one: 400 is not documented for it.
            reads = set(inspect.signature(fn).parameters) - {"request"}
            common = ("malformed_request",) if reads else ()
            return op(
                method,
                path,
                tags=tags,
                responses=errors(*common, *(("forbidden",) if self.staff else ()), *codes),
                sync_to_thread=self.threads,
                security=STAFF_SECURITY if self.staff else BUYER_SECURITY,
                **options,
            )(fn)

        return wrap

    def caller(self, request: Req) -> Actor:
        return self.svc.staff_member(request) if self.staff else self.svc.buyer(request)

    def run(
        self,
        request: Req,
        call: Callable[[Actor, str | None], T],
        *,
        key: str | None = None,
        owns: tuple[str, str] | None = None,
        first: Callable[[Actor], object] | None = None,
    ) -> T:
        """``call(actor, scoped_key)`` as the caller; ``first(actor)`` before it (whose record
        it is comes before what state it is in); ``owns=(kind, id)``: another buyer's record
        is not found."""
        for name, value in request.path_params.items():  # as documented (Litestar does not)
            if not (
                isinstance(value, str) and len(value) <= MAX_ID and re.search(NOT_SPACE, value)
            ):
                raise ValidationException(f"{name}: 1 to {MAX_ID} characters, not all space")
        actor = self.caller(request)
        scoped_key = scoped(actor, key)

        def go() -> T:
            if first is not None:
                first(actor)
            return call(actor, scoped_key)

        return go() if owns is None else owned(actor, *owns, go)
