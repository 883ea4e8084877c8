"""Notifiers: where outbox notifications go. The default writes JSON lines."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TextIO

from iap_flow.domain.models import Notification


def _line(n: Notification) -> str:
    return json.dumps(
        {
            "id": n.id,
            "topic": n.topic,
            "recipient": n.recipient,
            "payload": n.payload,
            "created_at": n.created_at.isoformat(),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


class JsonLinesNotifier:
    """One JSON object per line, to a file (appended) or a stream (stdout by default)."""

    def __init__(self, target: str | Path | TextIO | None = None) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._stream: TextIO = sys.stdout
        if isinstance(target, str | Path):
            self._path = Path(target)
        elif target is not None:
            self._stream = target

    def send(self, notification: Notification) -> None:
        line = _line(notification) + "\n"
        with self._lock:
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
            else:
                self._stream.write(line)
                self._stream.flush()


class MemoryNotifier:
    """Keeps what it was sent, in order: for tests, examples and embedding in a process."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def to(self, recipient: str) -> list[Notification]:
        return [n for n in self.sent if n.recipient == recipient]
