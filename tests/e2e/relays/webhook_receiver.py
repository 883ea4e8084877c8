"""A webhook receiver on loopback, as a customer would write one: it checks the signature
with :func:`verify`, dedupes on the outbox id, and can be told to fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from iap_flow.adapters.relays.webhook import verify
from iap_flow.domain.errors import InvalidInput


class Receiver:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.fail_next = 0
        """Answer 503 to this many requests (after reading them)."""
        self.fail_status = 503
        self.lose_ack_next = 0
        """Process this many, then answer 500 as if the acknowledgement were lost."""
        self.seen: list[int] = []
        """Every outbox id that arrived with a good signature, repeats included."""
        self.processed: dict[int, dict[str, Any]] = {}
        """What the receiver acted on, once per outbox id."""
        self.refused = 0
        self.lock = threading.Lock()
        self.url = ""

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            try:
                outbox_id = verify(body, headers, self.secrets)
            except InvalidInput:
                self.refused += 1
                return 401
            self.seen.append(outbox_id)
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_status
            self.processed.setdefault(outbox_id, json.loads(body))
            if self.lose_ack_next > 0:
                self.lose_ack_next -= 1
                return 500
            return 204

    def order(self) -> list[int]:
        return list(self.processed)


@contextmanager
def receiving(secrets: list[str]) -> Iterator[Receiver]:
    receiver = Receiver(secrets)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.handle(body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/iap-flow"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
