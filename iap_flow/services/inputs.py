"""Validating what callers pass in: text, ids, names, keys. Every refusal is an
:class:`~iap_flow.domain.errors.InvalidInput` naming the argument."""

from __future__ import annotations

import re
from enum import Enum
from typing import TypeVar

from iap_flow.domain import roles
from iap_flow.domain.errors import InvalidInput, NotFound
from iap_flow.domain.roles import Actor

T = TypeVar("T")

MAX_ID = 128
MAX_TEXT = 5_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""Refused in any text: NUL and the other C0/C1 control characters (terminal escape
sequences start with one) but tab and line breaks, and lone surrogates (not encodable)."""
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(value: str, field: str, *, line_breaks: bool = True) -> str:
    """Refuse control characters and lone surrogates alike on every store."""
    found = (_CONTROL if line_breaks else _ID_CONTROL).search(value)
    if found is not None:
        raise InvalidInput(
            f"{field} must not contain control characters (found {found.group()!r})", field=field
        )
    return value


def text(value: object, field: str, *, max_len: int = MAX_TEXT, min_len: int = 1) -> str:
    """Validate a free-text input: a str, stripped, within length bounds."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {type(value).__name__}", field=field)
    stripped = value.strip()
    if len(stripped) < min_len:
        if min_len == 1:
            raise InvalidInput(f"{field} must not be empty", field=field)
        raise InvalidInput(f"{field} must be at least {min_len} characters", field=field)
    if len(stripped) > max_len:
        raise InvalidInput(f"{field} must be at most {max_len} characters", field=field)
    return clean(stripped, field)


def ident(value: object, field: str) -> str:
    """Validate an id given by a caller: one line, no control characters."""
    return clean(text(value, field, max_len=MAX_ID), field, line_breaks=False)


def names(value: object, field: str) -> list[str]:
    """One name or an iterable of names (statuses), as a list; anything else is refused."""
    try:
        items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    except TypeError:
        items = [value]
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(
                f"{field} must be a name or a list of names, got {value!r}", field=field
            )
    return items


E = TypeVar("E", bound=Enum)


def member(known: type[E], value: object, field: str) -> E:
    """``value`` as a member of the text enum ``known``; :class:`InvalidInput` if it is none.

    >>> from iap_flow.domain.models import Platform
    >>> member(Platform, "app_store", "platform")
    <Platform.APP_STORE: 'app_store'>
    """
    try:
        return known(str(value))
    except ValueError:
        raise InvalidInput(
            f"{field} must be one of {', '.join(str(m.value) for m in known)}, got {value!r}",
            field=field,
        ) from None


def statuses(value: object, known: type[Enum]) -> tuple[str, ...]:
    """One status or several (None: none), each a value of ``known``, as text."""
    if value is None:
        return ()
    values = [str(member.value) for member in known]
    found = []
    for item in names(value, "status"):
        if item not in values:
            raise InvalidInput(
                f"status must be one of {', '.join(values)}, got {item!r}", field="status"
            )
        found.append(str(item))
    return tuple(found)


def limit(value: object, most: int) -> int:
    """A page size: an int from 1 to ``most``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidInput(f"limit must be an int from 1 to {most}", field="limit")
    return value


def key_or_none(value: object) -> str | None:
    if value is None:
        return None
    return text(value, "idempotency_key", max_len=200)


def must(value: T | None, kind: str, id: str) -> T:
    if value is None:
        raise NotFound(kind, id)
    return value


def check(actor: Actor, action: str, owner_id: str | None = None) -> None:
    roles.check(actor, action, owner_id=owner_id)
