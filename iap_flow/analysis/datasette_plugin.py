"""A Datasette plugin (entry point ``datasette: iap_flow``): the report's canned queries on
every iap-flow database, whatever its file name, on Datasette 0.65 and 1.0.

* An iap-flow store (a ``meta`` table with a ``schema_version``): every canned query.
* An analyst export (``iap-flow export --format sqlite``, marked by ``iap_flow_export``):
  the canned queries whose tables the export holds, on its pseudonymised rows.
* Any other database: nothing.

Datasette 0.65 asks for them through the ``canned_queries`` hook. Datasette 1.0 keeps
queries as *stored queries* in its internal database and has no such hook (1.0a41): there
the ``startup`` hook saves them with ``Datasette.add_query`` for every database it opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from datasette import hookimpl  # type: ignore[import-untyped]  # datasette ships no type hints

from iap_flow.analysis.datasette import queries, sqlite_render, tables_used
from iap_flow.analysis.export import EXPORT_MARKER

Queries = dict[str, dict[str, str]]


async def for_database(db: Any) -> Queries:
    """The canned queries that fit Datasette database ``db``."""
    tables = set(await db.table_names())
    if "meta" in tables:
        rows = await db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        if rows.first() is not None:
            return queries(sqlite_render())
    if EXPORT_MARKER in tables:
        return {
            name: query
            for name, query in queries(sqlite_render()).items()
            if tables_used(query["sql"]) <= tables
        }
    return {}


@hookimpl  # type: ignore[untyped-decorator]  # datasette's hookimpl is untyped
def canned_queries(datasette: Any, database: str) -> Callable[[], Awaitable[Queries]]:
    async def inner() -> Queries:
        return await for_database(datasette.get_database(database))

    return inner


@hookimpl  # type: ignore[untyped-decorator]  # datasette's hookimpl is untyped
def startup(datasette: Any) -> Callable[[], Awaitable[None]] | None:
    add = getattr(datasette, "add_query", None)
    if add is None:  # Datasette 0.65: canned_queries (above) serves them
        return None

    async def inner() -> None:
        for name, db in list(datasette.databases.items()):
            if name.startswith("_"):  # _internal, _memory
                continue
            for query_name, query in (await for_database(db)).items():
                await add(
                    name,
                    query_name,
                    query["sql"],
                    title=query["title"],
                    description=query["description"],
                    source="iap_flow",
                )

    return inner
