"""What the demo simulation draws on: its catalogue, the texts its buyers and staff write,
its people, decks of outcomes dealt in proportion, and the counts it reports."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from iap_flow.domain.models import Period, ProductKind
from iap_flow.domain.money import Money
from iap_flow.domain.roles import Actor, Role

DEMO_START = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)

PM = Actor("pm_pat", Role.PRODUCT_MANAGER)
AGENTS = (Actor.agent("agent_ana"), Actor.agent("agent_bo"), Actor.agent("agent_chen"))
LEAD = Actor.lead("lead_dee")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after every simulated hour."""


@attrs.frozen
class Item:
    """A product the simulated product manager puts on sale, and how often buyers pick it."""

    sku: str
    title: str
    price: Money
    kind: ProductKind
    weight: int
    period: Period | None = None


def _items(cur: str, unit: int, tag: str, names: tuple[str, ...]) -> tuple[Item, ...]:
    gems, chest, no_ads, founders, weekly, monthly = names
    c, n, s = ProductKind.CONSUMABLE, ProductKind.NON_CONSUMABLE, ProductKind.SUBSCRIPTION
    return (
        Item(f"gems_small_{tag}", gems, Money(199 * unit, cur), c, 30),
        Item(f"gems_chest_{tag}", chest, Money(1999 * unit, cur), c, 8),
        Item(f"no_ads_{tag}", no_ads, Money(499 * unit, cur), n, 6),
        # Above a support agent's approval limit: refunds of it need a lead.
        Item(f"founders_pack_{tag}", founders, Money(7999 * unit, cur), n, 3),
        Item(f"vip_weekly_{tag}", weekly, Money(299 * unit, cur), s, 4, Period.WEEK),
        Item(f"vip_monthly_{tag}", monthly, Money(999 * unit, cur), s, 4, Period.MONTH),
    )


CATALOGUE: tuple[Item, ...] = _items(
    "USD", 1, "us", ("100 gems", "Chest of gems", "No ads", "Founder's pack", "VIP weekly", "VIP")
) + _items(
    "CNY", 6, "cn", ("100 颗宝石", "宝石宝箱", "去广告", "创始人礼包", "VIP 周卡", "VIP 月卡")
)

TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "happy": ("Smooth purchase, thanks!", "Gems arrived instantly.", "Great value, love it."),
        "unhappy": (
            "I paid but waited a long time for my items.",
            "My card was declined twice, please help.",
            "The subscription is too expensive.",
        ),
        "refund": ("Bought by mistake", "My child bought this without asking", "Did not work"),
        "reject": ("The gems were already spent in the game", "Used items cannot be refunded"),
        "answer": ("Thanks for telling us, we have looked into it.", "Sorry about that, fixed."),
        "reopen": ("It happened again today.", "Still not working for me."),
    },
    "zh": {
        "happy": ("购买很顺利,谢谢!", "宝石马上就到账了。", "性价比很高,喜欢。"),
        "unhappy": ("付款后很久才收到商品。", "银行卡支付一直失败,请帮忙。", "订阅太贵了。"),
        "refund": ("误购", "孩子误操作购买", "商品无法使用"),
        "reject": ("宝石已在游戏中使用", "已使用的商品不能退款"),
        "answer": ("感谢反馈,我们已经处理。", "抱歉给您带来不便,已修复。"),
        "reopen": ("今天又出现了同样的问题。", "问题还是没有解决。"),
    },
}


@attrs.frozen
class SimulationStats:
    """What the simulated people and the sweep did, by action, over ``[started_at, ended_at)``."""

    seed: int
    buyers: int
    days: int
    started_at: datetime
    ended_at: datetime
    counts: dict[str, int]

    def lines(self) -> list[str]:
        """The stats as plain text lines."""
        head = (
            f"simulated {self.buyers} buyers over {self.days} days "
            f"({self.started_at:%Y-%m-%d} to {self.ended_at:%Y-%m-%d}), seed {self.seed}"
        )
        return [head] + [f"  {name}: {n}" for name, n in sorted(self.counts.items())]


class Deck:
    """Outcomes drawn without replacement from shuffled decks, so every outcome turns up in
    proportion. The first deck deals one of each outcome first: even a tiny run walks every
    path. The order stays seeded."""

    def __init__(self, rng: random.Random, **weights: int) -> None:
        self._rng = rng
        self._weights = weights
        each = list(weights)
        rng.shuffle(each)
        rest = [k for k, n in weights.items() for _ in range(n - 1)]
        rng.shuffle(rest)
        self._cards: list[str] = rest + each  # drawn from the end

    def draw(self) -> str:
        if not self._cards:
            self._cards = [k for k, n in self._weights.items() for _ in range(n)]
            self._rng.shuffle(self._cards)
        return self._cards.pop()
