"""Small inline SVG charts: the HTML report draws with these, so it needs no script at all.

Each function returns one ``<svg>`` element as text, sized in pixels, with a ``<title>`` for
screen readers. Labels are escaped; numbers are formatted by the caller's ``fmt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#3867d6", "#20bf6b", "#fa8231", "#eb3b5a", "#8854d0", "#0fb9b1", "#f7b731", "#4b6584")
INK = "#2d3436"
GRID = "#dfe6e9"
Fmt = Callable[[float], str]


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(high: float, most: int = 6) -> list[float]:
    """Round axis ticks from 0 covering ``high``: steps of 1, 2, 2.5 or 5 times a power of ten.

    >>> nice_ticks(162)
    [0.0, 50.0, 100.0, 150.0, 200.0]
    >>> nice_ticks(5)
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    if high <= 0:
        return [0.0, 1.0]
    raw = high / max(1, most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(high / step - 1e-9)
    return [float(round(i * step, 10)) for i in range(count + 1)]


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" font-family="system-ui, sans-serif"'
        f' font-size="12"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'
    )


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    fmt: Fmt = _num,
    width: int = 500,
    color: str = PALETTE[0],
    label_width: int = 160,
) -> str:
    """Horizontal bars, one per ``(label, value)``, longest scale = largest value."""
    if not items:
        return _empty(title, width)
    row = 22
    height = row * len(items) + 8
    top = max((v for _, v in items), default=0.0) or 1.0
    span = width - label_width - 70
    body = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = max(0.0, value) / top * span
        body.append(_text(label_width - 8, y + 15, _clip(label, 28), anchor="end"))
        body.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row - 7}"'
            f' rx="2" fill="{color}"/>'
        )
        body.append(_text(label_width + w + 6, y + 15, fmt(value)))
    return _svg(width, height, title, body)


def columns(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    fmt: Fmt = _num,
    width: int = 360,
    height: int = 180,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Vertical columns with their value above and their label below."""
    if not items:
        return _empty(title, width)
    top = max((v for _, v in items), default=0.0) or 1.0
    base, head = height - 22, 18
    slot = (width - 20) / len(items)
    body = [f'<line x1="10" y1="{base}" x2="{width - 10}" y2="{base}" stroke="{GRID}"/>']
    for i, (label, value) in enumerate(items):
        h = max(0.0, value) / top * (base - head)
        x = 10 + i * slot + slot * 0.15
        color = colors[i % len(colors)]
        body.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"'
            f' rx="2" fill="{color}"/>'
        )
        body.append(_text(x + slot * 0.35, base - h - 4, fmt(value), anchor="middle"))
        body.append(_text(x + slot * 0.35, height - 6, _clip(label, 12), anchor="middle"))
    return _svg(width, height, title, body)


def lines(
    x: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    fmt: Fmt = _num,
    width: int = 760,
    height: int = 240,
    top_value: float | None = None,
) -> str:
    """Lines over a shared x axis (days), with y grid lines, a few x ticks and a legend.

    The y axis runs from 0 to a round value at or above ``top_value`` (default: the
    largest value), with round ticks (:func:`nice_ticks`)."""
    if not x or not series:
        return _empty(title, width)
    left, right, top, bottom = 56, 12, 26, 24
    values = [v for _, ys in series for v in ys]
    ticks_y = nice_ticks(top_value or max(values, default=0.0) or 1.0)
    high = ticks_y[-1]
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(1, len(x) - 1)
    body = []
    for value in ticks_y:
        y = top + plot_h - plot_h * value / high
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        body.append(_text(left - 6, y + 4, fmt(value), anchor="end"))
    every = max(1, -(-len(x) * 100 // plot_w))  # a date label needs about 100 px
    ticks = list(range(0, len(x), every))
    if ticks[-1] != len(x) - 1:  # the last day always shows; it displaces a close neighbour
        if len(ticks) > 1 and len(x) - 1 - ticks[-1] < every:
            ticks.pop()
        ticks.append(len(x) - 1)
    for i in ticks:
        anchor = "start" if i == 0 else "end" if i == len(x) - 1 else "middle"
        body.append(_text(left + i * step, height - 6, x[i], anchor=anchor))
    for n, (name, ys) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = " ".join(
            f"{left + i * step:.1f},{top + plot_h - max(0.0, v) / high * plot_h:.1f}"
            for i, v in enumerate(ys)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"'
            ' stroke-linejoin="round"/>'
        )
        if len(ys) == 1:
            body.append(
                f'<circle cx="{left}" cy="{top + plot_h - max(0.0, ys[0]) / high * plot_h:.1f}"'
                f' r="3" fill="{color}"/>'
            )
        lx = left + n * 150
        body.append(f'<rect x="{lx}" y="6" width="12" height="12" rx="2" fill="{color}"/>')
        body.append(_text(lx + 17, 16, name))
    return _svg(width, height, title, body)


def stacked(parts: Sequence[tuple[str, float]], *, title: str, width: int = 500) -> str:
    """One bar split into shares, with a legend giving each part's count and share."""
    total = sum(v for _, v in parts)
    if not parts or total <= 0:
        return _empty(title, width)
    body = []
    x = 0.0
    for i, (_, value) in enumerate(parts):
        w = value / total * width
        body.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="22" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        x += w
    per_row = 3
    for i, (label, value) in enumerate(parts):
        lx, ly = (i % per_row) * (width / per_row), 40 + (i // per_row) * 20
        body.append(
            f'<rect x="{lx:.1f}" y="{ly - 11}" width="12" height="12" rx="2"'
            f' fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        body.append(_text(lx + 17, ly, f"{_clip(label, 24)}: {value:,.0f} ({value / total:.0%})"))
    return _svg(width, 44 + 20 * ((len(parts) - 1) // per_row + 1), title, body)


def spark(values: Sequence[float], *, title: str, width: int = 140, height: int = 28) -> str:
    """A tiny line of ``values`` (a topic's weekly counts)."""
    if not values:
        return _empty(title, width, height)
    high = max(values) or 1.0
    step = (width - 4) / max(1, len(values) - 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 3 - v / high * (height - 6):.1f}"
        for i, v in enumerate(values)
    )
    body = [f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>']
    return _svg(width, height, title, body)


def _empty(title: str, width: int, height: int = 40) -> str:
    return _svg(
        width, height, title, [_text(8, height / 2 + 4, "no data in this period", fill="#636e72")]
    )
