"""Money as integer minor units plus an ISO 4217 currency code. Never floats."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping

import attrs

from iap_flow.domain.errors import InvalidInput

MAX_AMOUNT = 2**63 - 1
"""The largest amount both stores hold (a signed 64-bit integer)."""


@functools.cache
def _table() -> dict[str, int]:
    """ISO 4217 currency code -> minor units, from the ISO's own table as the ``iso4217``
    package ships it (loaded on first use, not at import). Codes with no minor unit (funds,
    metals: 'N.A.') are not currencies a price can be in, so they are left out."""
    import iso4217

    table: dict[str, int] = {}
    for code, row in iso4217.raw_table.items():
        units = row.get("CcyMnrUnts")
        if code and isinstance(units, str) and units.isdigit():
            table[code] = int(units)
    return table


class _Exponents(Mapping[str, int]):
    """Currency -> its minor units (2 for USD, 0 for JPY, 3 for KWD), the full ISO 4217 list."""

    def __getitem__(self, code: str) -> int:
        return _table()[code]

    def __iter__(self) -> Iterator[str]:
        return iter(_table())

    def __len__(self) -> int:
        return len(_table())

    def __contains__(self, code: object) -> bool:
        return code in _table()


CURRENCY_EXPONENTS: Mapping[str, int] = _Exponents()
"""ISO 4217: each currency's minor units. Amounts stay integers; this is for display and for
converting a platform's decimal prices."""


def _check_amount(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"money amount must be an int of minor units (cents), got {value!r}", field="amount"
        )
    if value < 0:
        raise InvalidInput(f"money amount must not be negative, got {value}", field="amount")
    if value > MAX_AMOUNT:
        raise InvalidInput(
            f"money amount must be at most {MAX_AMOUNT}, got {value}", field="amount"
        )


def _check_currency(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or value not in _table():
        raise InvalidInput(
            f"currency must be an ISO 4217 currency code such as 'USD', got {value!r}",
            field="currency",
        )


@attrs.frozen(order=False)
class Money:
    """An amount in minor units (cents, fen) of one currency.

    >>> Money(499, "USD")
    Money(amount=499, currency='USD')
    >>> Money(499, "USD") + Money(1, "USD")
    Money(amount=500, currency='USD')
    >>> str(Money(12345, "EUR"))
    '123.45 EUR'
    """

    amount: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def trusted(cls, amount: int, currency: str) -> Money:
        """Build without validation: for values read back from the store, already checked."""
        money = object.__new__(cls)
        object.__setattr__(money, "amount", amount)
        object.__setattr__(money, "currency", currency)
        return money

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise InvalidInput(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __str__(self) -> str:
        exponent = CURRENCY_EXPONENTS.get(self.currency, 2)
        if exponent == 0:
            return f"{self.amount} {self.currency}"
        major, minor = divmod(self.amount, 10**exponent)
        return f"{major}.{minor:0{exponent}d} {self.currency}"


def share(money: Money, part: int, whole: int) -> Money:
    """``part / whole`` of ``money``, in whole minor units rounded half up (a platform's
    partial refund: a percentage in thousandths, a voided quantity of a purchase). The
    caller keeps a refunded total within what was paid; a share is never more than ``money``.

    >>> share(Money(1099, "USD"), 50_000, 100_000)  # Apple: 50 % of 10.99 is 5.495
    Money(amount=550, currency='USD')
    >>> share(Money(199, "USD"), 1, 3), share(Money(199, "USD"), 3, 3)
    (Money(amount=66, currency='USD'), Money(amount=199, currency='USD'))
    """
    if isinstance(part, bool) or isinstance(whole, bool) or not 0 <= part <= whole or whole < 1:
        raise InvalidInput(f"a share must be 0..{whole} of {whole}, got {part}", field="share")
    return Money((money.amount * part * 2 + whole) // (2 * whole), money.currency)
