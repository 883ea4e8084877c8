"""``iap-flow report`` and ``iap-flow export``: the analysis commands of the CLI.

Both act as an actor of a role that may read reports (``--role``, default: the developer
actor ``cli`` for the report, like the rest of the CLI, and a data analyst for exports, so
that exported files carry pseudonyms unless a developer or support lead asks otherwise).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from iap_flow.analysis import MAX_TEXTS, analyse
from iap_flow.analysis.export import DATASET_NAMES, FORMATS
from iap_flow.analysis.export import export as write_export
from iap_flow.cli import Settings, since_option, until_option
from iap_flow.cli.output import emit_json, inert, period
from iap_flow.cli.stores import SetupError
from iap_flow.domain.roles import Actor, Role, roles_for

READERS = sorted(str(r) for r in roles_for("report.read"))


def _actor(role: str, actor_id: str) -> Actor:
    return Actor(actor_id, Role(role))


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def writable_file(path: Path) -> None:
    """Refuse, before any work, a file whose folder does not exist."""
    folder = path.expanduser().resolve().parent
    if not folder.is_dir():
        raise SetupError(f"folder {folder} for {path.name} does not exist")


def role_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--role``: the role to read as, one of those allowed ``report.read``."""
    return click.option(
        "--role",
        type=click.Choice(READERS),
        default=default,
        show_default=True,
        help="Read as this role (it must be allowed report.read).",
    )


actor_id_option = click.option(
    "--as", "actor_id", default="cli", show_default=True, help="Actor id."
)


@click.command()
@since_option
@until_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Also write the report with charts to this self-contained HTML file "
    "('-': to stdout, the summary then goes to stderr).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON document.")
@click.option(
    "--max-texts",
    type=click.IntRange(100, 1_000_000),
    default=MAX_TEXTS,
    show_default=True,
    help="Texts per source the topic model reads (above: a systematic sample).",
)
@click.option(
    "--topics",
    type=click.IntRange(1, 20),
    default=8,
    show_default=True,
    help="At most this many topics per kind of text.",
)
@role_option("developer")
@actor_id_option
@click.pass_obj
def report(
    settings: Settings,
    since: datetime | None,
    until: datetime | None,
    html_path: Path | None,
    max_texts: int,
    topics: int,
    role: str,
    actor_id: str,
    as_json: bool,
) -> None:
    """Sales, refunds, service and feedback for [since, until): a summary here, charts in --html."""
    from iap_flow.analysis import html
    from iap_flow.analysis.terminal import print_summary

    period(since, until)
    to_stdout = html_path is not None and str(html_path) == "-"
    if html_path is not None and not to_stdout:
        writable_file(html_path)
    with settings.open() as flow:
        analysis = analyse(
            flow,
            _actor(role, actor_id),
            since=since,
            until=until,
            max_texts=max_texts,
            max_topics=topics,
        )
    if to_stdout:
        sys.stdout.write(html.render(analysis))
        sys.stdout.flush()
        print_summary(analysis, Console(stderr=True, highlight=False))
        return
    if as_json:
        emit_json(analysis)
    else:
        print_summary(analysis, _console())
    if html_path is not None:
        html.write(analysis, html_path)
        if not as_json:
            _console().print(f"HTML report: {inert(str(html_path))}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for orders, refunds, tickets and audit_events files (created if missing).",
)
@since_option
@until_option
@click.option(
    "--only",
    type=click.Choice(DATASET_NAMES),
    multiple=True,
    help="Export only this dataset (repeatable; default: all four).",
)
@click.option(
    "--pseudonym-key",
    envvar="IAP_FLOW_PSEUDONYM_KEY",
    show_envvar=True,
    help="Secret for pseudonyms; the same key gives the same pseudonyms in every export "
    "(default: a random key, so pseudonyms join only within this export).",
)
@role_option("data_analyst")
@actor_id_option
@click.pass_obj
def export(
    settings: Settings,
    fmt: str,
    out_dir: Path,
    since: datetime | None,
    until: datetime | None,
    only: tuple[str, ...],
    pseudonym_key: str | None,
    role: str,
    actor_id: str,
) -> None:
    """Export orders, refunds, tickets and audit events as CSV or Parquet for notebooks.

    Buyer ids and payment references are pseudonymised, and e-mail addresses and phone
    numbers are removed from free text, for every role but support_lead and developer.
    """
    period(since, until)
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise SetupError("Parquet export needs the parquet extra: pip install 'iap-flow[parquet]'")
    if not out_dir.expanduser().resolve().parent.is_dir():
        raise SetupError(f"folder {out_dir.expanduser().resolve().parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise SetupError(f"{out_dir} is a file, not a folder")
    actor = _actor(role, actor_id)
    with settings.open() as flow:
        written = write_export(
            partial(flow.report_rows, actor),
            actor,
            out_dir,
            fmt=fmt,
            since=since,
            until=until,
            key=None if pseudonym_key is None else pseudonym_key.encode(),
            datasets=only or DATASET_NAMES,
        )
    console = _console()
    for item in written:
        console.print(f"{item.dataset}: {item.rows:,} rows -> {inert(str(item.path))}")
