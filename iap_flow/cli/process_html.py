"""The process document as one self-contained HTML page (``iap-flow docs --html``).

It draws the swimlanes as inline SVG, so it needs no script and no network. It is made from
the same Markdown :func:`~iap_flow.cli.process_doc.process_document` writes.
"""

from __future__ import annotations

import re
from html import escape

from iap_flow.cli.process_guide import SWIMLANES, svg
from iap_flow.domain.policy import Policy

STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;"
    "max-width:1100px;margin:2em auto;padding:0 1em;color:#2d3436;line-height:1.5}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #dfe6e9;"
    "padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f6fa}"
    "code{background:#f5f6fa;padding:0 3px}h1{border-bottom:2px solid #3867d6}"
)
_NUMBERED = re.compile(r"^\d+\. (.*)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    text = escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return text.replace("&lt;br&gt;", "<br>")


def to_html(markdown: str, *, lang: str = "en", policy: Policy | None = None) -> str:
    """The HTML page for ``markdown`` (the subset the process document uses).

    Swimlane flowcharts are drawn as SVG; the engineers' state diagrams (Mermaid, which needs
    a script) are left out: their states are listed in the tables beside them.
    """
    policy = policy or Policy()
    lanes = iter(SWIMLANES)
    out: list[str] = []
    block: list[str] | None = None
    open_tag: str | None = None
    for line in markdown.splitlines():
        if block is not None:
            if line.startswith("```"):
                if block and block[0].startswith("flowchart"):
                    out.append(f'<figure class="lane">{svg(next(lanes), policy, lang)}</figure>')
                block = None
            else:
                block.append(line)
            continue
        kind = "ol" if _NUMBERED.match(line) else "table" if line.startswith("|") else None
        if open_tag and kind != open_tag:
            out.append(f"</{open_tag}>")
            open_tag = None
        if line.startswith("```"):
            block = []
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif kind == "ol":
            if open_tag is None:
                out.append("<ol>")
                open_tag = "ol"
            out.append(f"<li>{_inline(_NUMBERED.match(line)[1])}</li>")  # type: ignore[index]
        elif kind == "table":
            if line.startswith("| ---") or line.startswith("|---"):
                continue
            cells = [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(line.strip())[1:-1]]
            tag = "td" if open_tag else "th"
            if open_tag is None:
                out.append("<table>")
                open_tag = "table"
            out.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if open_tag:
        out.append(f"</{open_tag}>")
    language = "zh-CN" if lang == "zh" else "en"
    csp = "default-src 'none'; style-src 'unsafe-inline'"
    return (
        f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{_title(markdown)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(out)
        + "</body></html>\n"
    )


def _title(markdown: str) -> str:
    first = next((line for line in markdown.splitlines() if line.startswith("# ")), "# process")
    return escape(first[2:].strip())
