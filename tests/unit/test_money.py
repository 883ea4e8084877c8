"""Money: integer minor units plus an ISO 4217 code; never a float, never negative."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iap_flow import InvalidInput, Money
from iap_flow.domain.money import CURRENCY_EXPONENTS

amounts = st.integers(min_value=0, max_value=10**12)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CNY"])


@pytest.mark.parametrize("amount", [1.5, 199.0, "199", None, True, False, -1, -(10**9)])
def test_amount_must_be_a_non_negative_int(amount: object) -> None:
    with pytest.raises(InvalidInput) as bad:
        Money(amount, "USD")  # type: ignore[arg-type]
    assert bad.value.field == "amount"
    assert "amount" in str(bad.value)


@pytest.mark.parametrize("currency", ["usd", "US", "USDD", "", " USD", 840, None, "U$D"])
def test_currency_must_be_an_iso_code(currency: object) -> None:
    with pytest.raises(InvalidInput) as bad:
        Money(100, currency)  # type: ignore[arg-type]
    assert bad.value.field == "currency"
    assert "currency" in str(bad.value)


def test_money_is_a_frozen_value() -> None:
    price = Money(499, "USD")
    assert price == Money(499, "USD")
    assert price != Money(499, "EUR")
    assert hash(price) == hash(Money(499, "USD"))
    with pytest.raises(AttributeError):
        price.amount = 1  # type: ignore[misc]


@given(a=amounts, b=amounts, currency=currencies)
def test_adding_then_subtracting_gives_back_the_amount(a: int, b: int, currency: str) -> None:
    total = Money(a, currency) + Money(b, currency)
    assert total == Money(a + b, currency)
    assert total - Money(b, currency) == Money(a, currency)
    assert Money(a, currency) <= total
    assert (Money(a, currency) < Money(b, currency)) == (a < b)


@given(a=amounts, b=amounts)
def test_subtracting_below_zero_is_refused(a: int, b: int) -> None:
    if b > a:
        with pytest.raises(InvalidInput):
            Money(a, "USD") - Money(b, "USD")


@pytest.mark.parametrize("op", ["+", "-", "<", "<="])
def test_currencies_never_mix(op: str) -> None:
    usd, eur = Money(100, "USD"), Money(100, "EUR")
    with pytest.raises(InvalidInput, match="cannot combine USD with EUR"):
        {
            "+": lambda: usd + eur,
            "-": lambda: usd - eur,
            "<": lambda: usd < eur,
            "<=": lambda: usd <= eur,
        }[op]()


@given(amount=amounts, currency=currencies)
def test_display_shows_the_minor_unit_exactly(amount: int, currency: str) -> None:
    text = str(Money(amount, currency))
    number, code = text.split(" ")
    assert code == currency
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    if exponent == 0:
        assert number == str(amount)
    else:
        major, minor = number.split(".")
        assert len(minor) == exponent
        assert int(major) * 10**exponent + int(minor) == amount


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(12345, "EUR"), "123.45 EUR"),
        (Money(5, "USD"), "0.05 USD"),
        (Money(0, "USD"), "0.00 USD"),
        (Money(12000, "JPY"), "12000 JPY"),
        (Money(1234, "KWD"), "1.234 KWD"),
    ],
)
def test_display_examples(money: Money, text: str) -> None:
    assert str(money) == text


def test_trusted_builds_an_equal_value_without_checks() -> None:
    assert Money.trusted(499, "USD") == Money(499, "USD")


@given(
    amount=st.integers(0, 10**12),
    whole=st.integers(1, 100_000),
    data=st.data(),
)
def test_a_share_and_the_rest_add_up_to_the_whole(amount: int, whole: int, data: Any) -> None:
    """A share is rounded half up to the minor unit and never more than the amount; the share
    and the rest's share are the whole amount give or take the one rounding cent, and the
    whole is exactly the amount."""
    from iap_flow.domain.money import share

    part = data.draw(st.integers(0, whole))
    money = Money(amount, "USD")
    mine, rest = share(money, part, whole), share(money, whole - part, whole)
    assert 0 <= mine.amount <= amount
    exact = amount * part / whole
    assert abs(mine.amount - exact) <= 0.5
    assert abs(mine.amount + rest.amount - amount) <= 1
    assert share(money, whole, whole) == money and share(money, 0, whole).amount == 0


@pytest.mark.parametrize(("part", "whole"), [(-1, 10), (11, 10), (1, 0), (True, 2)])
def test_a_share_out_of_its_whole_is_refused(part: int, whole: int) -> None:
    from iap_flow.domain.money import share

    with pytest.raises(InvalidInput):
        share(Money(100, "USD"), part, whole)
