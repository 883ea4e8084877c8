"""Place-and-pay through the HTTP API over loopback, beside the same commands called directly.

HTTP: ``iap-flow --db <tmp>.db serve`` (one uvicorn worker, SQLite, RS256 JWT buyers from a
JWKS file) in its own process; a load generator with 1, 10 and 50 concurrent clients (one
asyncio task each, one keep-alive connection each, a minimal HTTP/1.1 client so that the
generator takes little of the CPU the server needs) runs POST /v1/orders then POST
/v1/orders/{id}/pay in a loop. Direct: the same two commands on ``open_flow`` in one process,
one after the other. Both deliver notifications inline to a JSON-lines file.

Prints throughput (place-and-pay pairs per second) and the p50/p99 latency of a pair, and
HTTP throughput as a share of direct.

    python benchmarks/http_place_and_pay.py [PAIRS_PER_LEVEL]     (default 1000)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "e2e" / "http"))

from http_server import AUDIENCE, ISSUER, KEYS, Signer

from iap_flow import Actor, Money, Role, open_flow
from iap_flow.adapters.notifiers import JsonLinesNotifier

LEVELS = (1, 10, 50)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def direct(db: Path, pairs: int) -> tuple[float, list[float]]:
    flow = open_flow(f"sqlite:///{db}", notifier=JsonLinesNotifier(db.with_suffix(".jsonl")))
    flow.catalogue.add(
        Actor("pm", Role.PRODUCT_MANAGER),
        sku="gems",
        title="Gems",
        description="bench",
        price=Money(499, "USD"),
        kind="consumable",
    )
    lat = []
    start = time.perf_counter()
    for i in range(pairs):
        buyer = Actor.buyer(f"u_{i % 50}")
        t = time.perf_counter()
        order = flow.orders.place(buyer, "gems")
        flow.orders.pay(buyer, order.id, token="tok_approve")
        lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    flow.close()
    return pairs / elapsed, lat


class Conn:
    """One keep-alive HTTP/1.1 connection; JSON in, JSON out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    async def post(self, path: str, headers: str, body: bytes) -> tuple[int, dict[str, object]]:
        self.w.write(
            f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{headers}\r\n".encode()
            + body
        )
        status_line = await self.r.readline()
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.r.readexactly(length)
        return int(status_line.split()[1]), json.loads(data)


async def client(port: int, token: str, todo: list[int], lat: list[float]) -> None:
    conn = Conn(*await asyncio.open_connection("127.0.0.1", port))
    auth = f"authorization: Bearer {token}\r\n"
    while todo:
        todo.pop()
        t = time.perf_counter()
        status, order = await conn.post("/v1/orders", auth, b'{"sku": "gems"}')
        assert status == 201, order
        status, paid = await conn.post(
            f"/v1/orders/{order['id']}/pay", auth, b'{"token": "tok_approve"}'
        )
        assert status == 200 and paid["status"] == "paid", paid
        lat.append(time.perf_counter() - t)
    conn.w.close()


async def load(port: int, tokens: list[str], clients: int, pairs: int) -> tuple[float, list[float]]:
    todo = list(range(pairs))
    lat: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(
        *(client(port, tokens[i % len(tokens)], todo, lat) for i in range(clients))
    )
    return pairs / (time.perf_counter() - start), lat


def serve(tmp: Path, signer: Signer, threads: bool) -> tuple[subprocess.Popen[bytes], int]:
    (tmp / "keys.json").write_text(json.dumps(KEYS))
    (tmp / "jwks.json").write_text(json.dumps(signer.jwks()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = str(tmp / f"http-{threads}.db")
    # servers open an existing store (like every command but init): create it first
    subprocess.run([sys.executable, "-m", "iap_flow.cli", "--db", db, "init"], check=True)
    cmd = [
        sys.executable, "-m", "iap_flow.cli", "--db", db, "serve",
        "--port", str(port), "--api-keys", str(tmp / "keys.json"),
        "--jwks-file", str(tmp / "jwks.json"), "--jwt-issuer", ISSUER,
        "--jwt-audience", AUDIENCE, "--log-level", "warning",
        "--threads" if threads else "--no-threads",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=os.environ.copy())
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def over_http(tmp: Path, signer: Signer, threads: bool, pairs: int) -> dict[int, Any]:
    proc, port = serve(tmp, signer, threads)
    try:
        import httpx

        product = {"sku": "gems", "title": "Gems", "description": "bench", "price": 499,
                   "currency": "USD", "kind": "consumable"}  # fmt: skip
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/staff/products",
            json=product,
            headers={"X-Api-Key": "k_pm"},
        )
        assert r.status_code == 201, r.text
        tokens = [signer.token(f"u_{i}") for i in range(50)]
        asyncio.run(load(port, tokens, 10, 200))  # warm up
        return {c: asyncio.run(load(port, tokens, c, pairs)) for c in LEVELS}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        signer = Signer()
        rate, lat = direct(tmp / "direct.db", pairs)
        results = {
            mode: over_http(tmp, signer, mode == "threads", pairs) for mode in ("threads", "loop")
        }
    ms = 1000
    print(f"place-and-pay, {pairs} pairs per level, SQLite, one worker")
    print(f"{'variant':<18}{'pairs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x direct':>10}")
    print(
        f"{'direct (1 caller)':<18}{rate:>9.0f}{pct(lat, 0.5) * ms:>9.2f}{pct(lat, 0.99) * ms:>9.2f}{1:>10.2f}"
    )
    for mode, levels in results.items():
        for c, (http_rate, http_lat) in levels.items():
            print(
                f"{f'http {mode} {c}':<18}{http_rate:>9.0f}{pct(http_lat, 0.5) * ms:>9.2f}"
                f"{pct(http_lat, 0.99) * ms:>9.2f}{http_rate / rate:>10.2f}"
            )
    print("(threads / loop: the SDK's calls in a thread pool / on the event loop; a pair is")
    print(" two requests; load generator and server share the machine)")


if __name__ == "__main__":
    main()
