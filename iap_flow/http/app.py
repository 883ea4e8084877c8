"""The ASGI application: :func:`create_app` builds it on a :class:`~iap_flow.Flow`.

The result is a plain ASGI callable, so it mounts under a path in any ASGI app (Litestar,
Starlette, FastAPI) or runs under uvicorn (``iap-flow serve``). Around the Litestar routes
it keeps the request id (``X-Request-Id`` echoed, or made), the request size limit, one log
line per request and the Prometheus metrics; beside them it serves the mounted endpoints
(the stores' webhooks, the Slack bot: :mod:`iap_flow.http.mounts`), which read their own
bodies and answer in their own formats.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from iap_flow import observability
from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.roles import Actor
from iap_flow.flow import Flow
from iap_flow.http.auth import Authenticator, Chain
from iap_flow.http.buyer import buyer_routes
from iap_flow.http.context import ASGIApp, Receive, Scope, Send, Service, op
from iap_flow.http.mounts import MAX_BODY as MOUNT_MAX_BODY
from iap_flow.http.mounts import slack_mounts, store_mounts
from iap_flow.http.problems import MEDIA_TYPE, encode, from_error, problem
from iap_flow.http.purchases import purchase_routes
from iap_flow.http.reconcile import reconcile_routes
from iap_flow.http.schemas import Health, Readiness
from iap_flow.http.staff import staff_routes

log = logging.getLogger("iap_flow.http")

RouteGroup = Callable[..., list[Any]]
ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    # One line a module: ``group(svc, threads=...)`` returns its route handlers.
    buyer_routes,
    purchase_routes,
    staff_routes,
    reconcile_routes,
)

MAX_BODY = 64 * 1024
"""Largest request body accepted (bytes); the API's bodies are a few hundred bytes."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Counter(
    "iap_flow_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "iap_flow_http_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ERRORS = Counter("iap_flow_http_problems_total", "Problem responses by code", ["code"])


class HttpService:
    """The ASGI application (see :func:`create_app`); ``litestar`` is the inner app."""

    def __init__(
        self, inner: Litestar, *, max_body: int, mounts: Mapping[str, ASGIApp] | None = None
    ) -> None:
        self.litestar = inner
        self.max_body = max_body
        self.mounts = dict(mounts or {})
        """Path -> ASGI app served beside the routes (webhooks, Slack)."""
        # Litestar's automatic OPTIONS answer names only one handler's methods when a path
        # has several (GET and POST /v1/orders): ``Allow`` is written from the route table.
        self._allow = {
            route.path_format: ", ".join(sorted(route.methods)).encode()
            for route in inner.routes
            if hasattr(route, "methods")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.litestar(scope, receive, send)  # type: ignore[arg-type]
            return
        started = time.perf_counter()
        scope = dict(scope)  # ours to annotate: an app we are mounted in keeps its own
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope["iap_request_id"] = rid
        mount = self.mounts.get(scope["path"].rstrip("/"))
        if mount is not None:
            scope["path_template"] = scope["path"].rstrip("/")
        status = 500
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), rid_header]
                allow = self._allow.get(scope.get("path_template", ""))
                if allow is not None and (scope["method"] == "OPTIONS" or status == 405):
                    headers = [(k, v) for k, v in headers if k.lower() != b"allow"]
                    headers.append((b"allow", allow))
                message["headers"] = headers
            await send(message)

        try:
            length = _header(scope, b"content-length")
            limit = self.max_body if mount is None else MOUNT_MAX_BODY
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _send_problem(send_with_id, scope, rid, "payload_too_large", 413, limit)
            elif mount is not None:
                await mount(scope, receive, send_with_id)
            else:
                await self.litestar(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            route = scope.get("path_template") or "unmatched"
            elapsed = time.perf_counter() - started
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(route).observe(elapsed)
            log.info(
                "%s %s %s %.1fms request_id=%s",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                rid,
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_problem(
    send: Send, scope: Scope, rid: str, code: str, status: int, limit: int
) -> None:
    body = encode(
        problem(
            code,
            f"request bodies are limited to {limit} bytes",
            path=scope["path"],
            request_id=rid,
            status=status,
        )
    )
    ERRORS.labels(code).inc()
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _respond(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    rid = str(request.scope.get("iap_request_id", ""))
    actor = request.scope.get("iap_actor")
    path = request.scope["path"]
    if isinstance(exc, IapFlowError):
        p = from_error(exc, actor if isinstance(actor, Actor) else None, path=path, request_id=rid)
    elif isinstance(exc, ValidationException):
        p = problem("malformed_request", _validation_detail(exc), path=path, request_id=rid)
    elif isinstance(exc, HTTPException):
        code = {
            404: "route_not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "malformed_request" if exc.status_code < 500 else "internal_error")
        p = problem(code, str(exc.detail), path=path, request_id=rid, status=exc.status_code)
    else:
        log.exception("request %s failed", rid, exc_info=exc)
        p = problem("internal_error", "Something went wrong on our side", path=path, request_id=rid)
    ERRORS.labels(p.code).inc()
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    if p.status == 503:
        headers["Retry-After"] = "5"
    return Response(encode(p), status_code=p.status, media_type=MEDIA_TYPE, headers=headers)


def _validation_detail(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = [
        f"{e.get('key') or e.get('source', 'body')}: {e.get('message')}"
        for e in extra
        if isinstance(e, dict)
    ]
    return "; ".join(parts) or str(exc.detail)


def _ops_routes(flow: Flow) -> list[Any]:

    @op(get, "/healthz", tags=["ops"], sync_to_thread=False)
    def healthz() -> Health:
        """The process is alive."""
        return Health("ok")

    @op(
        get,
        "/readyz",
        tags=["ops"],
        sync_to_thread=True,
        responses={503: ResponseSpec(Readiness, description="Not ready", generate_examples=False)},
    )
    def readyz() -> Response[Readiness]:
        """The store answers and its schema is the one this iap-flow expects."""
        reachable, version, expected = flow.readiness()
        if not reachable:
            log.warning("readyz: store unreachable")
        current = reachable and (expected is None or version == expected)
        body = Readiness("ready" if current else "not_ready", reachable, current, version, expected)
        return Response(body, status_code=200 if current else 503)

    @op(get, "/metrics", tags=["ops"], sync_to_thread=False, media_type=CONTENT_TYPE_LATEST)
    def metrics() -> bytes:
        """Prometheus metrics of this process: HTTP requests (the default registry), then
        commands, platform calls, payouts and store errors (iap_flow's own registry)."""
        return generate_latest() + observability.exposition()

    @get("/openapi.json", include_in_schema=False, sync_to_thread=False)
    def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The OpenAPI 3.1 document of this API."""
        if not cached:
            cached.append(msgspec.json.encode(request.app.openapi_schema.to_schema()))
        return Response(cached[0], media_type="application/vnd.oai.openapi+json")

    cached: list[bytes] = []
    return [healthz, readyz, metrics, openapi_json]


def create_app(
    flow: Flow,
    *,
    buyers: Authenticator | None = None,
    staff: Authenticator | None = None,
    app_store: Any = None,
    stores: Mapping[str, Any] | None = None,
    slack: Any = None,
    threads: bool = True,
    max_body: int = MAX_BODY,
    title: str = "iap-flow",
) -> HttpService:
    """The HTTP service on ``flow``.

    ``buyers`` authenticates the app's users (e.g. :class:`~iap_flow.http.auth.JwtBearer`),
    ``staff`` the staff and system callers (e.g. :class:`~iap_flow.http.auth.ApiKeys`); a route
    whose authenticator is missing answers 401. ``stores`` are the stores' notification
    ingests by platform name (``{"app_store": AppStoreNotifications(...), "google_play":
    GooglePlayNotifications(...)}``, as :func:`iap_flow.config_platforms.store_notifications`
    builds them from a configuration): each store's webhook is served at
    ``/webhooks/app-store`` / ``/webhooks/google-play`` and its buyer route enabled
    (``POST /v1/purchases/app-store``, ``POST /v1/orders/{id}/purchases/google-play``);
    ``app_store=`` is ``stores={"app_store": ...}``. ``slack`` (the bot's bolt ``App``) is
    served at ``/slack/events``. ``threads`` runs the SDK's blocking calls in a thread pool
    (keep it for PostgreSQL and real platforms).
    """
    stores = {**({"app_store": app_store} if app_store is not None else {}), **(stores or {})}
    svc = Service(flow, buyers or Chain(), staff or Chain(), stores)
    version = importlib.import_module("iap_flow").__version__
    openapi = OpenAPIConfig(
        title=title,
        version=version,
        path="/schema",
        render_plugins=[JsonRenderPlugin(path="/openapi.json")],
        components=Components(
            security_schemes={
                "buyerBearer": SecurityScheme(
                    type="http", scheme="bearer", bearer_format="JWT", description="Buyers"
                ),
                "staffApiKey": SecurityScheme(
                    type="apiKey", name="X-Api-Key", security_scheme_in="header"
                ),
            }
        ),
        use_handler_docstrings=True,
    )
    inner = Litestar(
        route_handlers=[
            *(handler for group in ROUTE_GROUPS for handler in group(svc, threads=threads)),
            *_ops_routes(flow),
        ],
        exception_handlers={Exception: _respond},
        openapi_config=openapi,
        request_max_body_size=max_body,
        logging_config=None,
    )
    mounts = store_mounts(stores)
    if slack is not None:
        mounts.update(slack_mounts(slack))
    return HttpService(inner, max_body=max_body, mounts=mounts)


__all__ = ["MAX_BODY", "HttpService", "MediaType", "create_app"]
