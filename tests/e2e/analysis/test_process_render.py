"""The Chinese process document as a department reads it: an HTML page Chromium draws."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from iap_flow.cli import cli
from iap_flow.cli import process_words as words
from iap_flow.cli.process_guide import SWIMLANES


def _screenshot(chromium: str, page: Path, png: Path, profile: Path, size: str) -> bytes:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return data


def test_docs_html_in_chinese_is_self_contained(tmp_path: Path) -> None:
    page = tmp_path / "process-zh.html"
    result = CliRunner().invoke(cli, ["docs", "--lang", "zh", "--html", "--out", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and not re.search(r"(src|href)\s*=", text)
    assert "lang='zh-CN'" in text and "default-src 'none'" in text
    for name in {v["zh"] for v in words.STATES.values()} | {v["zh"] for v in words.ROLES.values()}:
        assert name in text, name
    drawings = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert len(drawings) == len(SWIMLANES)
    for drawing in drawings:
        ET.fromstring(drawing)
    assert "否则通知客服主管" in text


def test_chromium_draws_the_chinese_process_document(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    page = tmp_path / "process-zh.html"
    assert (
        CliRunner().invoke(cli, ["docs", "--lang", "zh", "--html", "--out", str(page)]).exit_code
        == 0
    )
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>", encoding="utf-8")
    shot = _screenshot(chromium, page, tmp_path / "zh.png", tmp_path / "profile", "1100,2600")
    empty = _screenshot(chromium, blank, tmp_path / "blank.png", tmp_path / "profile", "1100,2600")
    assert struct.unpack(">II", shot[16:24]) == (1100, 2600)
    assert len(shot) > 8 * len(empty) and len(shot) > 100_000, (len(shot), len(empty))
    keep = os.environ.get("IAP_FLOW_KEEP_PROCESS_SCREENSHOT")
    if keep:
        shutil.copy(tmp_path / "zh.png", keep)
