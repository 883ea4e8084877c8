"""Run ``iap-flow serve`` as its own process on loopback, and talk to it as the app would.

Buyers' tokens are RS256 JWTs signed with a key made per run; the server reads the public
half from a JWKS file (or a JWKS URL served on loopback), with issuer and audience checked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://id.example.test"
AUDIENCE = "iap-flow-app"
KEYS = {
    "k_agent": {"id": "agent_1", "role": "support_agent"},
    "k_lead": {"id": "lead_1", "role": "support_lead"},
    "k_pm": {"id": "pm_1", "role": "product_manager"},
    "k_dev": {"id": "dev_1", "role": "developer"},
    "k_system": {"id": "system", "role": "system"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Signer:
    """The app's identity provider: an RSA key, its JWKS, and tokens for any buyer."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def token(self, sub: str, *, ttl: int = 3600, **claims: Any) -> str:
        body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + ttl}
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


class Api:
    """An HTTP client for one running server."""

    def __init__(self, base: str, signer: Signer, db: Path) -> None:
        self.base = base
        self.signer = signer
        self.db = db
        self.http = httpx.Client(base_url=base, timeout=10)

    def buyer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signer.token(user)}"}

    @staticmethod
    def staff(key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    def get(self, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=headers, **kw)

    def post(
        self, path: str, headers: dict[str, str], body: Any = None, **kw: Any
    ) -> httpx.Response:
        return self.http.post(path, headers=headers, json={} if body is None else body, **kw)

    def product(self, sku: str = "gems_100", price: int = 499, kind: str = "consumable") -> None:
        r = self.post(
            "/v1/staff/products",
            self.staff("k_pm"),
            {
                "sku": sku,
                "title": sku.replace("_", " "),
                "description": "for tests",
                "price": price,
                "currency": "USD",
                "kind": kind,
                **({"period": "month"} if kind == "subscription" else {}),
            },
        )
        assert r.status_code == 201, r.text

    def paid_order(self, user: str, sku: str = "gems_100", token: str = "tok_approve") -> str:
        who = self.buyer(user)
        r = self.post("/v1/orders", who, {"sku": sku})
        assert r.status_code == 201, r.text
        order_id: str = r.json()["id"]
        r = self.post(f"/v1/orders/{order_id}/pay", who, {"token": token})
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
        return order_id


@contextmanager
def serving(
    tmp: Path,
    *,
    jwks_url: str | None = None,
    signer: Signer | None = None,
    env: dict[str, str] | None = None,
    config: Path | None = None,
) -> Iterator[Api]:
    """``iap-flow [--config <config>] --db <tmp>/shop.db serve`` on a free port, until the
    block ends."""
    signer = signer or Signer()
    keys = tmp / "keys.json"
    keys.write_text(json.dumps(KEYS), encoding="utf-8")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(signer.jwks()), encoding="utf-8")
    db = tmp / "shop.db"
    port = free_port()
    source = ["--jwks-url", jwks_url] if jwks_url else ["--jwks-file", str(jwks)]
    top = ["--config", str(config)] if config is not None else []
    cmd = [
        sys.executable,
        "-m",
        "iap_flow.cli",
        *top,
        "--db",
        str(db),
        "serve",
        "--port",
        str(port),
        "--api-keys",
        str(keys),
        *source,
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
        "--log-level",
        "warning",
    ]
    # the fakes live on loopback: no proxy in between
    environ = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    environ.update(env or {})
    # A server opens an existing store only (like every command but init): make it first.
    subprocess.run(
        [sys.executable, "-m", "iap_flow.cli", "--db", str(db), "init"],
        check=True,
        capture_output=True,
        env=environ,
    )
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=environ)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + (tmp / "serve.log").read_text())
            time.sleep(0.05)
        api = Api(base, signer, db)
        yield api
        api.http.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
