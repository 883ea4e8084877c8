"""Read a store's own tables through the raw driver, for the checks (never for writes)."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit


def raw_rows(url: str, query: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        try:
            return list(conn.execute(query).fetchall())
        finally:
            conn.close()
    import psycopg

    parts = urlsplit(url)
    params = parse_qs(parts.query)
    schema = params.pop("schema")[0]
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    with psycopg.connect(base, autocommit=True) as pg:
        pg.execute(f"SET search_path TO {schema}")
        cur = pg.execute(query)
        return list(cur.fetchall()) if cur.description else []
