"""Recurring problems in buyers' texts: TF-IDF and NMF (scikit-learn), jieba for Chinese.

Everything runs offline: jieba ships its dictionary inside the package and scikit-learn
learns from the texts at hand, so nothing is downloaded. Chinese runs are segmented into words
by jieba (with a few in-app-purchase words added), other text is split on letters; stop words
of both languages are dropped. NMF then finds ``k`` topics; each text counts for its strongest
topic, and a topic is named by its heaviest words.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import attrs

from iap_flow.analysis.model import Topic, Topics

MIN_TEXTS = 6
"""Fewer texts than this say nothing about recurring topics."""
SAME_TOPIC = 0.1
"""Topics whose word weights have at least this cosine similarity are reported as one."""

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)

# Words of this domain jieba's general dictionary splits or does not know.
_ZH_WORDS = (
    "到账",
    "闪退",
    "退款",
    "充值",
    "扣款",
    "扣费",
    "内购",
    "订阅",
    "续费",
    "自动续费",
    "客服",
    "钻石",
    "金币",
    "会员",
    "卡顿",
    "未到账",
    "误购",
    "没到账",
)
_ZH_STOP_TEXT = (
    "的 了 是 我 你 他 她 它 们 也 都 就 还 在 有 这 那 吗 呢 啊 吧 呀 哦 和 与 及 或 一个 一下 "
    "一直 已经 什么 怎么 为什么 因为 所以 但是 而且 然后 可以 可能 这个 那个 这样 非常 真的 "
    "我们 你们 他们 自己 不是 没有 就是 还是 之后 以后 现在 时候 今天 昨天 请 谢谢 太 很 "
    "又 再 被 把 让 给 对 从 到 说 要 会 能 个 啦 嘛 么 得 地 着 过 后 上 下 中 里"
)
_ZH_STOP = frozenset(_ZH_STOP_TEXT.split())
_EN_STOP_TEXT = (
    "app game please thanks thank just really im ive dont didnt doesnt cant wont got get "
    "still yet also would could one two did does"
)
_EN_EXTRA_STOP = frozenset(_EN_STOP_TEXT.split())


@functools.cache
def _jieba() -> Any:
    """A private jieba tokenizer (never the global one: the host application may use it)."""
    import jieba  # type: ignore[import-untyped]  # jieba ships no type hints

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for word in _ZH_WORDS:
        tokenizer.add_word(word, freq=20_000)
    return tokenizer


@functools.cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]  # no hints
        ENGLISH_STOP_WORDS,
    )

    return frozenset(ENGLISH_STOP_WORDS) | _EN_EXTRA_STOP | _ZH_STOP


def tokens(text: str) -> list[str]:
    """Words of ``text`` for the topic model: jieba for Chinese runs, letters elsewhere."""
    return [stemmed for stemmed, _ in words(text)]


def words(text: str) -> list[tuple[str, str]]:
    """``(stem, word as written)`` for every word of ``text`` that is not a stop word."""
    stop = _stop_words()
    out: list[str] = []
    position = 0
    for match in _CJK.finditer(text):
        out.extend(w.lower() for w in _WORD.findall(text[position : match.start()]))
        out.extend(w for w in _jieba().lcut(match.group(), HMM=False) if w.strip())
        position = match.end()
    out.extend(w.lower() for w in _WORD.findall(text[position:]))
    return [(stem(w), w) for w in out if w not in stop and not (len(w) == 1 and not _CJK.match(w))]


def stem(word: str) -> str:
    """Fold English inflections (refunds, refunded -> refund; crashes -> crash) together.

    Deliberately crude: it only has to make variants of one word meet, not produce a word;
    labels show the most frequent spelling. Chinese words pass through unchanged.
    """
    if not word.isascii():
        return word
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _week(created_at: str) -> str:
    day = date.fromisoformat(created_at[:10])
    return (day - timedelta(days=day.weekday())).isoformat()


@attrs.frozen
class Text:
    """One text to group: when it was written, what it says, and its rating if it has one."""

    created_at: str
    body: str
    rating: int | None = None


@attrs.define
class _Corpus:
    """Distinct texts (identical ones are tokenised and modelled once, weighted by count)."""

    distinct: list[str] = attrs.Factory(list)
    count: Counter[str] = attrs.Factory(Counter)
    weeks: dict[str, Counter[str]] = attrs.Factory(lambda: defaultdict(Counter))
    ratings: dict[str, list[int]] = attrs.Factory(lambda: defaultdict(list))
    spelled: dict[str, Counter[str]] = attrs.Factory(lambda: defaultdict(Counter))
    docs: list[list[str]] = attrs.Factory(list)

    @classmethod
    def of(cls, texts: Sequence[Text]) -> _Corpus:
        corpus = cls()
        for t in texts:
            if t.body not in corpus.count:
                corpus.distinct.append(t.body)
            corpus.count[t.body] += 1
            corpus.weeks[t.body][_week(t.created_at)] += 1
            if t.rating is not None:
                corpus.ratings[t.body].append(t.rating)
        for body in corpus.distinct:
            pairs = words(body)
            for stemmed, word in pairs:
                corpus.spelled[stemmed][word] += corpus.count[body]
            corpus.docs.append([stemmed for stemmed, _ in pairs])
        return corpus


def language(text: str) -> str:
    """``zh`` for a text written mostly in Chinese characters, ``other`` otherwise."""
    cjk = sum(len(m) for m in _CJK.findall(text))
    letters = sum(len(m) for m in _WORD.findall(_CJK.sub(" ", text)))
    return "zh" if cjk and cjk >= letters / 3 else "other"


def group_of(text: Text) -> str:
    """Texts modelled together: one language, and praise (rated 4-5) apart from the rest, so
    that a frequent compliment never absorbs a rarer complaint for want of shared words."""
    mood = "praise" if text.rating is not None and text.rating >= 4 else "problems"
    return f"{language(text.body)}:{mood}"


def find_topics(
    texts: Sequence[Text],
    *,
    source: str,
    total: int | None = None,
    stride: int = 1,
    k: int = 8,
    seed: int = 0,
    membership: dict[str, int] | None = None,
) -> Topics:
    """Group ``texts`` into topics, largest first: at most ``k`` per language.

    Each language is modelled on its own, so complaints in Chinese never share a topic with
    praise in English (or in Chinese, for lack of shared words). ``total`` is how many texts
    the period has and ``stride`` the sampling step that picked ``texts`` from them; counts are
    scaled by ``stride`` so they estimate the whole period. ``membership``, if given, is
    filled with each distinct text -> the index of its topic in the result.
    """
    total = len(texts) if total is None else total

    def empty(note: str) -> Topics:
        return Topics(source, total, len(texts), stride, (), note)

    if len(texts) < MIN_TEXTS:
        return empty(f"too few texts (< {MIN_TEXTS})")
    try:
        import numpy  # noqa: F401  # the extra's libraries, checked before any work
        import sklearn  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return empty("topics need the analysis extra: pip install 'iap-flow[analysis]'")
    all_weeks = sorted({_week(t.created_at) for t in texts})
    groups: dict[str, list[Text]] = defaultdict(list)
    for t in texts:
        groups[group_of(t)].append(t)
    found: list[tuple[Topic, list[str]]] = []
    notes = []
    for group in sorted(groups):
        mine = groups[group]
        topics, note = _model(mine, k=k, seed=seed, stride=stride, weeks=all_weeks)
        found.extend(topics)
        if note:
            notes.append(note)
    if not found:
        return empty(notes[0] if notes else "no recurring words")
    found.sort(key=lambda pair: (-pair[0].count, pair[0].label))
    if membership is not None:
        for index, (_, bodies) in enumerate(found):
            membership.update({body: index for body in bodies})
    weeks = Counter[str]()
    for t in texts:
        weeks[_week(t.created_at)] += 1
    note = "" if stride == 1 else f"a systematic sample: one text in every {stride}"
    weekly = tuple((w, n * stride) for w, n in sorted(weeks.items()))
    return Topics(source, total, len(texts), stride, tuple(t for t, _ in found), note, weekly)


def _model(
    texts: Sequence[Text], *, k: int, seed: int, stride: int, weeks: Sequence[str]
) -> tuple[list[tuple[Topic, list[str]]], str]:
    """TF-IDF and NMF over ``texts`` (one language): topics with their distinct texts."""
    import numpy as np
    from sklearn.decomposition import NMF  # type: ignore[import-untyped]  # no hints
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = _Corpus.of(texts)
    keep = [i for i, d in enumerate(corpus.docs) if d]
    if not keep:
        return [], "no words left after stop words"
    vectorizer = TfidfVectorizer(
        analyzer=lambda d: d, min_df=2 if len(keep) >= 50 else 1, sublinear_tf=True
    )
    try:
        matrix = vectorizer.fit_transform([corpus.docs[i] for i in keep])
    except ValueError:  # an empty vocabulary after min_df
        return [], "no recurring words"
    terms = vectorizer.get_feature_names_out()
    weight = np.sqrt([[corpus.count[corpus.distinct[i]]] for i in keep])
    if len(keep) == 1:  # one distinct text: it is its own topic (NMF needs two)
        weights, components = np.ones((1, 1)), matrix.toarray()
    else:
        model = NMF(
            n_components=max(1, min(k, len(keep), len(terms))),
            init="nndsvda",
            random_state=seed,
            max_iter=500,
        )
        with np.errstate(invalid="ignore"):  # nndsvda on a tiny matrix takes sqrt(-0.0)
            fitted = model.fit_transform(matrix.multiply(weight).tocsr())
        weights, components = _merge_similar(fitted, model.components_)
    members: dict[int, list[int]] = defaultdict(list)
    for row in range(len(keep)):
        best = int(weights[row].argmax())
        if weights[row, best] > 0:
            members[best].append(row)
    found = []
    for topic, rows in members.items():
        top = tuple(
            corpus.spelled[str(terms[j])].most_common(1)[0][0]
            for j in components[topic].argsort()[::-1][:5]
            if components[topic, j] > 0
        )
        bodies = [corpus.distinct[keep[r]] for r in sorted(rows, key=lambda r: -weights[r, topic])]
        trend = Counter[str]()
        ratings: list[int] = []
        for body in bodies:
            trend.update(corpus.weeks[body])
            ratings.extend(corpus.ratings.get(body, ()))
        topic_ = Topic(
            label=" / ".join(top[:3]),
            terms=top,
            count=sum(corpus.count[b] for b in bodies) * stride,
            examples=tuple(_clip(b) for b in bodies[:3]),
            trend=tuple((w, trend[w] * stride) for w in weeks),
            average_rating=sum(ratings) / len(ratings) if ratings else None,
        )
        found.append((topic_, bodies))
    return found, ""


def _merge_similar(weights: Any, components: Any) -> tuple[Any, Any]:
    """Join topics whose word weights point the same way (cosine >= :data:`SAME_TOPIC`): a
    problem that NMF split in two because ``k`` was larger than the number of problems."""
    import numpy as np

    k = components.shape[0]
    unit = components / np.maximum(np.linalg.norm(components, axis=1, keepdims=True), 1e-12)
    similar = unit @ unit.T
    parent = list(range(k))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(k):
        for j in range(i + 1, k):
            if similar[i, j] >= SAME_TOPIC:
                parent[root(j)] = root(i)
    groups = sorted({root(i) for i in range(k)})
    merge = np.zeros((k, len(groups)))
    for i in range(k):
        merge[i, groups.index(root(i))] = 1.0
    return weights @ merge, merge.T @ components


def _clip(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
