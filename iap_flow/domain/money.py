"""Money as integer minor units plus an ISO 4217 currency code. Never floats."""

from __future__ import annotations

import re

import attrs

from iap_flow.domain.errors import InvalidInput

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _check_amount(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"money amount must be an int of minor units (cents), got {value!r}", field="amount"
        )
    if value < 0:
        raise InvalidInput(f"money amount must not be negative, got {value}", field="amount")


def _check_currency(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise InvalidInput(
            f"currency must be an ISO 4217 code such as 'USD', got {value!r}", field="currency"
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


# Currencies whose minor unit is not 1/100 (ISO 4217); display only, amounts stay integers.
CURRENCY_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
