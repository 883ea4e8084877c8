"""HTTP conventions over real HTTP: auth failures, problems, request ids, size limits, ops
endpoints, the OpenAPI document, a JWKS fetched by URL, and the app mounted in another app."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from http_server import AUDIENCE, ISSUER, Api, Signer, free_port, serving


def user() -> str:
    return "u_" + uuid.uuid4().hex[:10]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_problem(api: Api) -> None:
    r = api.get("/v1/orders", {})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/unauthenticated") and body["status"] == 401
    assert body["instance"] == "/v1/orders" and body["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.token("u_1", ttl=-3600),  # expired
        lambda s: s.token("u_1", aud="another-app"),
        lambda s: s.token("u_1", iss="https://evil.example"),
        lambda s: Signer(kid=s.kid).token("u_1"),  # same kid, another key
        lambda s: Signer(kid="unknown").token("u_1"),
        lambda s: s.token("u_1")[:-4] + "AAAA",  # tampered signature
        lambda s: jwt.encode(
            {"sub": "u_1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            "a-guessed-secret-of-thirty-two-bytes!",
            algorithm="HS256",
        ),
        lambda s: "not-a-jwt",
    ],
    ids=[
        "expired",
        "audience",
        "issuer",
        "wrong-key",
        "unknown-kid",
        "tampered",
        "hs256",
        "garbage",
    ],
)
def test_bad_tokens_are_refused(api: Api, make: object) -> None:
    token = make(api.signer)  # type: ignore[operator]
    r = api.get("/v1/orders", bearer(token))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


def test_request_id_is_echoed_or_made(api: Api) -> None:
    mine = api.get("/healthz", {"X-Request-Id": "req-abc.123"})
    assert mine.headers["x-request-id"] == "req-abc.123"
    made = api.get("/healthz", {})
    assert len(made.headers["x-request-id"]) == 32
    for hostile in ("spaces are not allowed", "x" * 300, "<script>"):
        r = api.get("/healthz", {"X-Request-Id": hostile})
        assert len(r.headers["x-request-id"]) == 32 and r.headers["x-request-id"] != hostile
    r = api.get("/v1/orders/ord_x", {**api.buyer(user()), "X-Request-Id": "trace-42"})
    assert r.json()["request_id"] == "trace-42"


def test_request_size_limit(api: Api) -> None:
    big = {"sku": "x" * 70_000}
    r = api.post("/v1/orders", api.buyer(user()), big)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"sku": "'
        for _ in range(70):
            yield b"x" * 1000
        yield b'"}'

    r = api.http.post(
        "/v1/orders",
        headers={**api.buyer(user()), "content-type": "application/json"},
        content=chunks(),
    )
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_malformed_json_and_unknown_routes_are_problems(api: Api) -> None:
    who = api.buyer(user())
    r = api.http.post(
        "/v1/orders", headers={**who, "content-type": "application/json"}, content=b"{nope"
    )
    assert r.status_code == 400 and r.json()["code"] == "malformed_request"
    r = api.post("/v1/orders", who, {"sku": 5})
    assert r.status_code == 400 and "sku" in r.json()["detail"]
    r = api.get("/v1/nothing-here", who)
    assert r.status_code == 404 and r.json()["code"] == "route_not_found"
    r = api.http.delete("/v1/products", headers=who)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_buyers_get_a_fixed_sentence_for_internal_errors(api: Api) -> None:
    """A conflict's message names staff; a buyer gets the title, staff get the message."""
    name = user()
    order_id = api.paid_order(name)
    who = api.buyer(name)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    api.post(f"/v1/orders/{order_id}/refunds", {**who, **key}, {"reason": "first reason"})
    r = api.post(f"/v1/orders/{order_id}/refunds", {**who, **key}, {"reason": "second reason"})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert r.json()["detail"] == r.json()["title"]  # the buyer is not shown the key's history


def test_healthz_readyz_metrics(api: Api) -> None:
    assert api.get("/healthz", {}).json() == {"status": "ok"}
    ready = api.get("/readyz", {})
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["schema_version"] == ready.json()["expected_schema_version"]
    api.get("/v1/products", api.buyer(user()))
    text = api.get("/metrics", {}).text
    assert 'iap_flow_http_requests_total{method="GET",route="/v1/products",status="200"}' in text
    assert "iap_flow_http_request_seconds_bucket" in text
    assert 'iap_flow_http_problems_total{code="unauthenticated"}' in text
    # the core's own metrics beside them: a paid order called the platform
    api.paid_order(user())
    text = api.get("/metrics", {}).text
    assert 'iap_flow_platform_calls_total{call="charge",outcome="ok",platform="sandbox"}' in text


def test_readyz_is_503_when_the_schema_is_not_current(api: Api) -> None:
    with sqlite3.connect(api.db) as db:
        (real,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    try:
        r = api.get("/readyz", {})
        assert r.status_code == 503
        assert r.json() == {
            "status": "not_ready",
            "store": True,
            "schema_current": False,
            "schema_version": 99,
            "expected_schema_version": int(real),
        }
    finally:
        with sqlite3.connect(api.db) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (real,))
    assert api.get("/readyz", {}).status_code == 200


def test_openapi_document(api: Api) -> None:
    doc = api.get("/openapi.json", {}).json()
    assert doc["openapi"].startswith("3.1")
    ops = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert ("post", "/v1/orders") in ops and (
        "post",
        "/v1/staff/refunds/{refund_id}/approve",
    ) in ops
    place = doc["paths"]["/v1/orders"]["post"]
    assert place["security"] == [{"buyerBearer": []}]
    assert "application/problem+json" in place["responses"]["422"]["content"]
    assert {"Problem", "OrderOut", "PlaceOrder"} <= set(doc["components"]["schemas"])


class _Jwks(BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """This module's server reads the buyers' keys from a JWKS URL (an IdP on loopback)."""
    signer = Signer(kid="idp-1")
    _Jwks.body = json.dumps(signer.jwks()).encode()
    idp = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{idp.server_address[1]}/.well-known/jwks.json"
    try:
        with serving(tmp_path_factory.mktemp("http"), jwks_url=url, signer=signer) as running:
            running.product("gems_100", 499)
            yield running
    finally:
        idp.shutdown()


def test_keys_come_from_the_jwks_url(api: Api) -> None:
    ok = api.get("/v1/orders", api.buyer(user()))
    assert ok.status_code == 200 and ok.json()["items"] == []
    assert _Jwks.hits >= 1  # the server fetched the keys from the URL
    stranger = Signer(kid="idp-1").token("u_url")
    assert api.get("/v1/orders", bearer(stranger)).status_code == 401


def test_mounted_under_a_path_in_another_asgi_app(tmp_path: Path) -> None:
    """Embedding: the service as a mount of the host's own Litestar app, under uvicorn."""
    (tmp_path / "host.py").write_text(
        textwrap.dedent(
            f"""
            from litestar import Litestar, asgi, get
            from iap_flow import open_flow
            from iap_flow.http import create_app

            shop = create_app(open_flow("sqlite:///{tmp_path / "host.db"}"))

            @get("/", sync_to_thread=False)
            def home() -> str:
                return "host app"

            app = Litestar([home, asgi("/shop", is_mount=True, copy_scope=True)(shop)])
            """
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "host:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        assert httpx.get(base + "/").text == "host app"
        assert httpx.get(base + "/shop/healthz").json() == {"status": "ok"}
        r = httpx.get(base + "/shop/v1/products")
        assert r.status_code == 401 and r.json()["instance"] == "/v1/products"
    finally:
        proc.terminate()
        proc.wait(10)
