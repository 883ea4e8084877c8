"""How the CLI prints: inert text for the terminal, JSON for machines, tables for people.

Buyer- and platform-supplied text (ids, reasons, ticket bodies) is shown *inert*: rich markup
is escaped so ``[bold red]ADMIN[/]`` prints as typed, and control characters, escape
sequences and bidirectional overrides are replaced by visible ``\\x1b``-style escapes so
nothing a buyer types can move the cursor, recolour the terminal or reorder a line.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from iap_flow.domain.money import Money

# C0 and C1 controls, DEL, and the bidirectional embedding / override / isolate marks.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutral(value: object) -> str:
    """``value`` as text with control characters and escape sequences made visible."""
    return _UNSAFE.sub(_visible, str(value))


def inert(value: object) -> str:
    """``value`` safe to print through rich: controls made visible, markup escaped."""
    return escape(neutral(value))


def console() -> Console:
    """Standard output; tables keep whole ids when it is not a terminal (pipes, files, tests)."""
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def instant(value: str | None) -> datetime | None:
    """An ISO 8601 date or time as a UTC instant (no offset means UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not an ISO date or time (2026-01-31T12:00)"
        raise click.BadParameter(message) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def period(since: datetime | None, until: datetime | None) -> None:
    """Refuse an empty or inverted period ``[since, until)`` as a usage error."""
    if since is not None and until is not None and since >= until:
        raise click.BadParameter(
            f"--since ({since:%Y-%m-%d %H:%M} UTC) must be before --until "
            f"({until:%Y-%m-%d %H:%M} UTC)",
            param_hint="'--since'",
        )


def when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def span(left: timedelta) -> str:
    """``5h12m`` or ``2d03h`` for a length of time (its sign ignored)."""
    minutes = int(abs(left) / timedelta(minutes=1))
    hours, rest = divmod(minutes, 60)
    return f"{hours // 24}d{hours % 24:02d}h" if hours >= 48 else f"{hours}h{rest:02d}m"


def due(at: datetime | None, now: datetime) -> str:
    """``in 5h12m`` or ``overdue 2d03h``: how long until (or since) a deadline (rich markup)."""
    if at is None:
        return "-"
    left = at - now
    return f"in {span(left)}" if left >= timedelta(0) else f"[red]overdue {span(left)}[/]"


def plain(value: Any) -> Any:
    """A JSON-ready copy of a record: attrs classes to dicts, times to ISO, money to parts."""
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if attrs.has(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    """One JSON document on stdout. ASCII-escaped, so no buyer text reaches a terminal raw."""
    click.echo(json.dumps(plain(data), ensure_ascii=True, sort_keys=True))


def table(*columns: str, rows: list[list[object]], **options: Any) -> Table:
    """A table whose every cell is inert text."""
    out = Table(*columns, **options)
    for row in rows:
        out.add_row(*(inert(cell) for cell in row))
    return out


CURSOR_PREFIX = "c1."


def encode_cursor(raw: str | None) -> str | None:
    """An opaque cursor for a store's page token (``c1.`` + base64url)."""
    if raw is None:
        return None
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> str | None:
    """The store's page token behind an opaque cursor; a usage error if it is not one."""
    if token is None:
        return None
    body = token.strip().removeprefix(CURSOR_PREFIX)
    try:
        if not token.strip().startswith(CURSOR_PREFIX):
            raise ValueError
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise click.BadParameter(
            "not a cursor this command printed (give the 'next cursor' value as is)",
            param_hint="'--cursor'",
        ) from None
