"""Slack, faked on 127.0.0.1 with real HTTP and a real websocket, and a signed-request driver.

- :class:`FakeSlack`: the Web API (``/api/<method>``), recording every call; it can answer a
  method once with an error status (429 with ``Retry-After``) or ``ok: false``.
- :class:`FakeSocketMode`: a websocket endpoint (RFC 6455 text frames) that sends Socket
  Mode envelopes and collects the client's acknowledgements.
- :class:`Driver`: posts slash commands, block actions, view submissions and events to the
  bot over HTTP, signed with the signing secret like Slack does.

Used by the tests in this folder and by ``benchmarks/slack_ack.py``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from slack_sdk.signature import SignatureVerifier

TEAM = "T0TEAM"
BOT_USER = "U0BOT"


@attrs.frozen
class Call:
    """One Web API call as the fake received it."""

    method: str
    params: dict[str, Any]
    status: int
    ok: bool
    token: str
    """The bearer token the call came with (bot token, or app-level token)."""
    path: str = ""


class FakeSlack:
    """The Slack Web API on an ephemeral port: records calls, answers like Slack would."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.groups: dict[str, list[str]] = {}
        self.ws_url = ""
        self._failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._holds: dict[str, threading.Event] = {}
        self._arrived: dict[str, int] = {}
        self._changed = threading.Condition()
        self._seq = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL to give WebClient (``base_url``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what the tests use -------------------------------------------------------------------
    def fail_once(self, method: str, status: int = 429, **body: Any) -> None:
        """Answer the next call of ``method`` with ``status`` (429: ``Retry-After: 0``), or with
        ``status=200`` and ``ok: false`` plus ``body``."""
        self._failures.setdefault(method, []).append((status, body))

    def hold(self, method: str) -> threading.Event:
        """Keep every call of ``method`` waiting (unanswered) until the returned event is set."""
        self._holds[method] = threading.Event()
        return self._holds[method]

    def arrived(self, method: str) -> int:
        """How many calls of ``method`` reached the fake so far (answered or still held)."""
        with self._changed:
            return self._arrived.get(method, 0)

    def to(self, method: str, *, ok_only: bool = True) -> list[dict[str, Any]]:
        """Parameters of every call to ``method`` so far (only successful ones by default)."""
        with self._changed:
            return [c.params for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``method`` was answered ``count`` times; return those calls."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := self.to(method)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self.calls]
                    raise AssertionError(f"{method} called {len(found)} times, not {count}: {seen}")
                self._changed.wait(left)
            return found

    # -- the server side ----------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        method = path.removeprefix("/api/")
        if path.startswith("/respond/"):  # a response_url: recorded as "respond"
            method = "respond"
        params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if "json" in (handler.headers.get("Content-Type") or ""):
            params.update(json.loads(raw or b"{}"))
        elif raw:
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
        with self._changed:
            self._arrived[method] = self._arrived.get(method, 0) + 1
            self._changed.notify_all()
        held = self._holds.get(method)
        if held is not None:
            held.wait(10)
        status, answer, headers = self._answer(method, params)
        if method == "chat.postMessage" and answer.get("ok"):
            params["ts"] = answer["ts"]  # recorded as the message Slack keeps, with its ts
        with self._changed:
            token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
            self.calls.append(Call(method, params, status, bool(answer.get("ok")), token, path))
            self._changed.notify_all()
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self, method: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        pending = self._failures.get(method)
        if pending:
            status, body = pending.pop(0)
            if status == 429:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}
            return status, {"ok": False, **body}, {}
        ts = f"1772442000.{next(self._seq):06d}"
        answers: dict[str, dict[str, Any]] = {
            "auth.test": {"user_id": BOT_USER, "bot_id": "B0BOT", "team_id": TEAM, "team": "test"},
            "chat.postMessage": {"channel": params.get("channel"), "ts": ts},
            "chat.update": {"channel": params.get("channel"), "ts": params.get("ts")},
            "chat.postEphemeral": {"message_ts": ts},
            "views.open": {"view": {"id": f"V{ts.replace('.', '')}"}},
            "views.publish": {"view": {"id": f"V{ts.replace('.', '')}"}},
            "usergroups.users.list": {"users": self.groups.get(str(params.get("usergroup")), [])},
            "apps.connections.open": {"url": self.ws_url},
            "respond": {},
        }
        if method not in answers:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, {"ok": True, **answers[method]}, {}


class Driver:
    """Sends Slack's requests to the bot, signed with ``secret`` (or deliberately not)."""

    def __init__(self, url: str, secret: str, slack: FakeSlack | None = None) -> None:
        self.url = url
        self._signer = SignatureVerifier(secret)
        self._seq = itertools.count(1)
        self._slack = slack

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST a body; the signature is right unless ``signature`` or ``timestamp`` says otherwise."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = signature or self._signer.generate_signature(timestamp=ts, body=body.decode())
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("Content-Type", content_type)
        request.add_header("X-Slack-Request-Timestamp", ts)
        request.add_header("X-Slack-Signature", sig)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def command(self, user: str, text: str, command: str = "/iap") -> tuple[int, dict[str, Any]]:
        """A slash command; returns the HTTP status and the (ephemeral) answer: the ack's body,
        or what the bot sent to the command's ``response_url`` (on the fake) after acking."""
        n = next(self._seq)
        response_url = (
            self._slack.url.replace("/api/", f"/respond/{n}")
            if self._slack
            else "http://127.0.0.1:9/never"
        )
        form = {
            "token": "legacy",
            "team_id": TEAM,
            "channel_id": "C0REVIEW",
            "user_id": user,
            "command": command,
            "text": text,
            "response_url": response_url,
            "trigger_id": f"trigger.{n}",
        }
        status, body = self.post(
            urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        )
        if body or self._slack is None or status != 200:
            return status, (json.loads(body) if body else {})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for call in self._slack.calls:
                if call.method == "respond" and call.path == f"/respond/{n}":
                    return status, call.params
            time.sleep(0.01)
        raise AssertionError(f"no answer to {command} {text!r} at its response_url")

    def interact(self, payload: Mapping[str, Any], **kwargs: Any) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def click(
        self, user: str, action_id: str, value: str, *, message: Mapping[str, Any], **kwargs: Any
    ) -> tuple[int, str]:
        """A button click on ``message`` (a recorded chat.postMessage call)."""
        return self.interact(
            block_actions(user, action_id, value, message, next(self._seq)), **kwargs
        )

    def submit(
        self,
        user: str,
        view: Mapping[str, Any],
        values: Mapping[str, str],
        *,
        view_id: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Submit the modal ``view`` (a recorded views.open view) with ``{block_id: text}``."""
        payload = view_submission(user, view, values, view_id or f"V{next(self._seq):08d}")
        status, body = self.interact(payload)
        return status, (json.loads(body) if body else {})

    def event(
        self, event: Mapping[str, Any], event_id: str, *, retry: int | None = None
    ) -> tuple[int, str]:
        """An Events API delivery; ``retry`` sets ``X-Slack-Retry-Num`` like Slack's retries."""
        envelope = event_callback(event, event_id)
        headers = (
            {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            if retry
            else {}
        )
        return self.post(json.dumps(envelope).encode(), "application/json", headers=headers)


def block_actions(
    user: str, action_id: str, value: str, message: Mapping[str, Any], n: int
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a posted message."""
    channel, ts = message["channel"], message["ts"]
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "trigger_id": f"trigger.{n}",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "channel": {"id": channel, "name": "refund-reviews"},
        "message": {"ts": ts, "text": message.get("text", ""), "blocks": message.get("blocks", [])},
        "response_url": "http://127.0.0.1:9/never",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "action_ts": f"{1772442000 + n}.{n:06d}",
            }
        ],
    }


def view_submission(
    user: str, view: Mapping[str, Any], values: Mapping[str, str], view_id: str
) -> dict[str, Any]:
    """A ``view_submission`` payload for a modal the bot opened."""
    state = {
        block: {block: {"type": "plain_text_input", "value": text}}
        for block, text in values.items()
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "trigger_id": "trigger.view",
        "view": {
            **view,
            "id": view_id,
            "team_id": TEAM,
            "state": {"values": state},
            "hash": "h",
        },
    }


def event_callback(event: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """An Events API envelope."""
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1772442000,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


class FakeSocketMode:
    """A Socket Mode websocket endpoint on 127.0.0.1: one client at a time."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._conn: socket.socket | None = None
        self._connected = threading.Event()
        self._acks: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=test"

    def send(self, kind: str, payload: Mapping[str, Any], envelope_id: str) -> None:
        """Send one envelope (``slash_commands``, ``interactive``, ``events_api``)."""
        if not self._connected.wait(10):
            raise AssertionError("the bot never connected to the Socket Mode endpoint")
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": True,
        }
        self._frame(0x1, json.dumps(message).encode())

    def ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The client's acknowledgement of ``envelope_id`` (its response payload inside)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no ack for envelope {envelope_id}")
                self._changed.wait(left)
            return self._acks[envelope_id]

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)  # wakes both ends' blocking reads
            self._conn.close()
        self._listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.decode().split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self._conn = conn
        self._connected.set()
        self._frame(0x1, json.dumps({"type": "hello", "num_connections": 1}).encode())
        self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        buffer = b""

        def take(n: int) -> bytes:
            nonlocal buffer
            while len(buffer) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buffer += chunk
            out, buffer = buffer[:n], buffer[n:]
            return out

        try:
            while not self._closed:
                first, second = take(2)
                opcode, length = first & 0x0F, second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", take(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", take(8))
                mask = take(4) if second & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(take(length)))
                if opcode == 0x9:  # ping -> pong
                    self._frame(0xA, data)
                elif opcode == 0x8:
                    return
                elif opcode == 0x1:
                    message = json.loads(data)
                    with self._changed:
                        self._acks[message["envelope_id"]] = message
                        self._changed.notify_all()
        except (ConnectionError, OSError):
            return

    def _frame(self, opcode: int, data: bytes) -> None:
        size = len(data)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        assert self._conn is not None
        with self._send_lock:
            self._conn.sendall(header + data)
