"""The README's "HTTP service" walk-through, run as written (bar the pip install) in bash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from http_server import free_port

README = Path(__file__).parents[3] / "README.md"


def walkthrough() -> str:
    section = README.read_text(encoding="utf-8").split("## HTTP service", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the HTTP service section has a shell walk-through"
    return match.group(1)


def test_readme_walkthrough_places_and_pays_a_first_order(tmp_path: Path) -> None:
    script = walkthrough()
    assert script.startswith("pip install 'iap-flow[http]'\n")
    port = str(free_port())
    script = script.split("\n", 1)[1].replace("8000", port)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    env.pop("IAP_FLOW_DB", None)
    run = subprocess.run(
        ["bash", "-e", "-c", script + "\nwait\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode in (0, 143), run.stdout + run.stderr  # 143: the server, killed
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    ready, product, paid, listed = (json.loads(line) for line in lines)
    assert ready["status"] == "ready" and product["sku"] == "gems_100"
    assert paid["status"] == "paid" and paid["user_id"] == "u_42"
    assert [o["id"] for o in listed["items"]] == [paid["id"]]
    assert (tmp_path / "shop.db").exists()
