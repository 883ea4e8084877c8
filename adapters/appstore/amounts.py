"""Apple's prices (milliunits of the currency) as the flow's money (integer minor units)."""

from __future__ import annotations

from iap_flow.domain.money import CURRENCY_EXPONENTS, Money


def minor_units(price_milliunits: int, currency: str) -> Money:
    """Apple's price (milliunits of the currency) as integer minor units, rounded half up.

    >>> minor_units(1990, "USD")
    Money(amount=199, currency='USD')
    >>> minor_units(160000, "JPY")
    Money(amount=160, currency='JPY')
    """
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    scaled = price_milliunits * 10**exponent
    return Money((scaled + 500) // 1000, currency)


__all__ = ["minor_units"]
