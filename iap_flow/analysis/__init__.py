"""Analysis for data analysts and process reviews: reports, feedback topics, charts, exports.

>>> from iap_flow import open_flow, Actor
>>> from iap_flow.analysis import analyse
>>> with open_flow("sqlite://") as flow:
...     analysis = analyse(flow, Actor("ana", "data_analyst"))
>>> analysis.sales.total.orders
0

Needs the ``analysis`` extra (scikit-learn, jieba, pyarrow) only for feedback topics and
Parquet exports; those libraries are imported when first used, never by ``import iap_flow``.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from iap_flow.analysis.compute import EXPORTS, MAX_TEXTS, QUERIES
from iap_flow.analysis.model import Analysis
from iap_flow.domain.clock import utc
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.roles import Actor, check
from iap_flow.flow import Flow

__all__ = ["EXPORTS", "MAX_TEXTS", "QUERIES", "Analysis", "analyse"]


def analyse(
    flow: Flow,
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_texts: int = MAX_TEXTS,
    max_topics: int = 8,
) -> Analysis:
    """The full report for ``[since, until)``; the actor needs ``report.read``."""
    from iap_flow.analysis.compute import analyse as compute

    check(actor, "report.read")
    since = None if since is None else utc(since)
    until = None if until is None else utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"the period is empty or inverted: {since} is not before {until}")
    return compute(
        partial(flow.report_rows, actor),
        since,
        until,
        now=flow.clock.now(),
        max_texts=max_texts,
        max_topics=max_topics,
    )
