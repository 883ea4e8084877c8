"""Topic grouping on fixed English and Chinese texts whose recurring problems are known."""

# ruff: noqa: RUF001  # the Chinese texts use the fullwidth comma, as buyers type it

from __future__ import annotations

import pytest

from iap_flow import Actor
from iap_flow.analysis.topics import Text, find_topics, tokens

pytest.importorskip("sklearn", reason="topics need the analysis extra (scikit-learn)")
pytest.importorskip("jieba", reason="Chinese tokenisation needs the analysis extra (jieba)")

THEMES: dict[str, tuple[int, tuple[str, ...]]] = {
    # theme: (how many texts, the ways buyers put it)
    "refund": (
        14,
        (
            "I asked for a refund two weeks ago and the refund never arrived",
            "refund still not received after approval",
            "where is my refund, the money was not returned to my card",
            "refund request approved but no money back yet",
            "waiting for my refund for days",
        ),
    ),
    "退款": (
        11,
        (
            "退款申请了一个星期还没有到账",
            "退款一直没到账，客服也不回复",
            "申请退款被拒绝了，很不合理",
            "退款什么时候到账",
        ),
    ),
    "crash": (
        9,
        (
            "the game crashes right after purchase",
            "app crash when I open the shop",
            "crashes every time I tap buy",
            "crash on launch since the update",
        ),
    ),
    "闪退": (7, ("购买之后游戏闪退", "一打开商店就闪退", "充值的时候闪退了，钱扣了")),
    "gems": (
        5,
        (
            "bought gems but the gems were not delivered",
            "paid for 100 gems, gems missing from my account",
            "gems never showed up after payment",
        ),
    ),
}


def corpus() -> tuple[list[Text], dict[str, str]]:
    """The texts (spread over three weeks) and which theme each one belongs to."""
    texts, theme_of = [], {}
    for theme, (count, phrasings) in THEMES.items():
        for i in range(count):
            body = phrasings[i % len(phrasings)]
            theme_of[body] = theme
            day = 2 + (i * 7) % 21
            texts.append(Text(f"2026-03-{day:02d}T10:00:00+00:00", body, rating=1 + i % 3))
    return texts, theme_of


def test_chinese_is_segmented_into_words() -> None:
    assert tokens("退款申请了一个星期还没有到账") == ["退款", "申请", "星期", "到账"]
    assert "闪退" in tokens("充值的时候闪退了，钱扣了")


def test_english_inflections_meet_and_stop_words_go() -> None:
    assert tokens("The refunds were refunded") == ["refund", "refund"]
    assert tokens("It crashes; it crashed") == ["crash", "crash"]


def test_the_known_topics_come_out_largest_first() -> None:
    texts, theme_of = corpus()
    found = find_topics(texts, source="feedback")
    assert found.texts == found.analysed == 46
    assert [t.count for t in found.topics] == [14, 11, 9, 7, 5]
    first_words = [t.terms[0] for t in found.topics]
    assert first_words == ["refund", "退款", "crashes", "闪退", "gems"]
    for topic, theme in zip(found.topics, THEMES, strict=True):
        # Every example of a topic is a text of its theme.
        assert {theme_of[e] for e in topic.examples} == {theme}
        assert sum(n for _, n in topic.trend) == topic.count
        assert topic.average_rating is not None and 1 <= topic.average_rating <= 3


def test_weekly_shares_add_up_to_one_per_week() -> None:
    texts, _ = corpus()
    found = find_topics(texts, source="feedback")
    weeks = len(found.weeks)
    assert weeks == 3  # 2026-03-02 is a Monday; the texts span days 2 to 22
    sums = [sum(found.shares(t)[w] for t in found.topics) for w in range(weeks)]
    assert sums == pytest.approx([1.0] * weeks)


def test_a_sample_scales_counts_to_the_whole_period() -> None:
    texts, _ = corpus()
    found = find_topics(texts[::2], source="feedback", total=46, stride=2)
    assert found.analysed == 23 and found.texts == 46
    assert sum(t.count for t in found.topics) == 46
    assert found.note == "a systematic sample: one text in every 2"


def test_too_few_texts_say_so() -> None:
    found = find_topics([Text("2026-03-02T00:00:00+00:00", "refund please")], source="reasons")
    assert found.topics == () and "too few" in found.note


def test_topics_keep_each_language_and_complaint_apart() -> None:
    """Purity on the demo's known classes: every feedback text of a simulated run is one of
    the simulation's phrases; a topic is pure when all its texts are the same phrase."""
    from collections import Counter, defaultdict

    from iap_flow.adapters.notifiers import MemoryNotifier
    from iap_flow.analysis.topics import Text, find_topics, language
    from iap_flow.cli.simulation import TEXTS, open_demo_flow, simulate

    # The known classes: each complaint on its own, praise as one class per language.
    known = {
        text: (lang, kind, 0 if kind == "happy" else i)
        for lang, kinds in TEXTS.items()
        for kind, texts in kinds.items()
        for i, text in enumerate(texts)
    }
    with open_demo_flow("sqlite://", seed=5, notifier=MemoryNotifier()) as flow:
        simulate(flow, buyers=60, days=10, seed=5)
        tickets = flow.feedback.queue(
            Actor("dev", "developer"),
            status=["open", "answered", "resolved", "reopened"],
            limit=1000,
        )
    texts = [Text(t.created_at.isoformat(), t.body, t.rating) for t in tickets]
    assert {t.body for t in texts} <= set(known)
    membership: dict[str, int] = {}
    find_topics(texts, source="feedback", membership=membership)
    classes: dict[int, Counter[tuple[str, str, int]]] = defaultdict(Counter)
    for t in texts:
        classes[membership[t.body]][known[t.body]] += 1
    purity = sum(c.most_common(1)[0][1] for c in classes.values()) / len(texts)
    assert purity == 1.0, [dict(c) for c in classes.values()]
    for counts in classes.values():
        assert len({lang for lang, _, _ in counts}) == 1, "a topic never mixes languages"
    complaints = [t for t in TEXTS["zh"]["unhappy"] if t in membership]
    assert len({membership[t] for t in complaints}) == len(complaints) >= 2
    assert language("银行卡支付一直失败,请帮忙。") == "zh" and language("Card declined") == "other"
