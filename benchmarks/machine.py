"""One line naming the machine a benchmark ran on; every benchmark here prints it first."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    try:
        return f", load {os.getloadavg()[0]:.1f}"
    except OSError:
        return ""


def describe(postgres: str | None = None) -> str:
    """``machine: Linux x86_64, 2 cores (AMD EPYC), Python 3.11.2, SQLite 3.40.1[, PostgreSQL 15.2]``

    with the 1-minute load average when the run started (a busy machine moves the figures).
    """
    parts = [
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({_cpu()})",
        f"Python {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if postgres:
        parts.append(f"PostgreSQL {postgres}")
    return "machine: " + ", ".join(parts) + _load()


def postgres_version(url: str) -> str:
    """The server's version (``15.20``), asked over ``url``."""
    import psycopg  # only the PostgreSQL benchmarks need it

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split(" ", 1)[0] if row else "?"
