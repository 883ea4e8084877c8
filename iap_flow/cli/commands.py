"""The ``iap-flow`` command group: options every command shares, plugins, errors, exit codes.

The commands themselves live beside this module: :mod:`~iap_flow.cli.reads` (queries),
:mod:`~iap_flow.cli.oncall` (staff write commands), :mod:`~iap_flow.cli.admin` (init,
migrate, demo, sweep, worker, docs). Every command goes through the public API as an
:class:`~iap_flow.domain.roles.Actor`: reads as the developer actor ``cli``, the sweep and the
worker as the ``system`` actor, on-call writes as the staff actor given by ``--actor``.

Exit codes: 0 done; 1 the process refused (not allowed, not found, wrong state: an
:class:`~iap_flow.domain.errors.IapFlowError`); 2 the command could not start (usage, no store
at that path, a foreign file, a missing extra or folder). Errors are one line on stderr.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import click
from click.core import ParameterSource
from rich.console import Console

from iap_flow import observability
from iap_flow.cli.output import instant, neutral
from iap_flow.cli.plugins import EntryPointPlugins, Plugin, PluginCommand
from iap_flow.cli.stores import SetupError, require, sqlite_file
from iap_flow.config import Config, load_config, open_flow_from_config
from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.roles import Actor, Role
from iap_flow.flow import DEFAULT_URL, Flow
from iap_flow.ports import Notifier

CLI_ACTOR = Actor("cli", Role.DEVELOPER)
"""Who the CLI acts as for reads and reports (the sweep runs as :data:`~iap_flow.domain.roles.SYSTEM`)."""


PLUGINS: Mapping[str, Plugin] = EntryPointPlugins()
"""Commands provided by extras and other distributions (entry points, read when first needed)."""


def db_url(value: str) -> str:
    """A store URL from ``--db``: URLs pass through, a bare path means an SQLite file."""
    value = value.strip()
    if not value:
        raise click.BadParameter("give a URL (sqlite:///orders.db) or a file path")
    return value if "://" in value else "sqlite:///" + value


sqlite_path = sqlite_file


def notifications_path(url: str) -> Path:
    """Where notifications go by default: ``<db>.notifications.jsonl`` next to an SQLite file."""
    path = sqlite_path(url)
    if path is None:
        return Path("iap_flow.notifications.jsonl")
    return path.with_name(path.stem + ".notifications.jsonl")


def json_lines(path: Path | None) -> Notifier:
    """The JSON-lines notifier (picked by name: the CLI is a composition root)."""
    module = importlib.import_module("iap_flow.adapters.notifiers")
    notifier: Notifier = module.JsonLinesNotifier(path)
    return notifier


def parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return instant(value)


since_option = click.option(
    "--since",
    callback=parse_time,
    help="From this date/time, ISO 8601 (inclusive; UTC if no offset).",
)
until_option = click.option(
    "--until",
    callback=parse_time,
    help="Until this date/time, ISO 8601 (exclusive; UTC if no offset).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document instead of tables."
)


class FlowGroup(click.Group):
    """The ``iap-flow`` group: lazy plugin commands, one-line errors, a log line per command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *PLUGINS})  # a built-in wins a name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        plugin = PLUGINS.get(cmd_name)
        if plugin is not None and cmd_name not in self.commands:
            return PluginCommand(cmd_name, plugin, error)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        observability.note(command=name)
        if isinstance(command, PluginCommand):
            command = command.load()
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        with observability.command() as record:
            try:
                return super().invoke(ctx)
            except SetupError as exc:
                record.outcome = "usage"
                error(str(exc))
                raise click.exceptions.Exit(2) from exc
            except IapFlowError as exc:
                record.outcome = "refused"
                record.fields["error"] = type(exc).__name__
                error(str(exc))
                raise click.exceptions.Exit(1) from exc
            except click.exceptions.Exit as exc:
                record.outcome = "ok" if exc.exit_code == 0 else "usage"
                raise
            except click.ClickException:
                record.outcome = "usage"
                raise


def error(message: str) -> None:
    """One red line on stderr; ``message`` is shown inert."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print("[bold red]error:[/] ", end="")
    err.print(neutral(" ".join(message.split())), style="red", markup=False)


@attrs.define
class Settings:
    url: str
    """The store: ``--db`` if given, else the configuration's ``store.url``."""
    config: Config | None = None
    """The ``--config`` file (or ``$IAP_FLOW_CONFIG``), if any."""
    actor_spec: str | None = None

    def open(self, notifications: Path | None = None, *, create: bool = False) -> Flow:
        """Open the flow from the configuration (if any) on :attr:`url`. Without one,
        buyers' notifications go to a JSON-lines file next to the database and the staff's
        stay in the outbox for the Slack bot; ``notifications`` moves the buyers' file.

        Unless ``create``, the store must exist and carry iap-flow's schema at this version
        (:class:`~iap_flow.cli.stores.SetupError` otherwise): a typo never creates a file.
        """
        if not create:
            require(self.url)
        return open_flow_from_config(self.configured(notifications), url=self.url)

    def configured(self, notifications: Path | None = None) -> Config:
        """The configuration this command runs with (``--notifications`` applied)."""
        data: dict[str, Any] = {
            k: dict(v) for k, v in (self.config.data if self.config else {}).items()
        }
        data.setdefault("store", {})["url"] = self.url
        where = data.setdefault("notifications", {})
        if notifications is not None:
            where["buyer"] = f"jsonl:{notifications.absolute()}"
        elif self.config is None:
            where["buyer"] = f"jsonl:{notifications_path(self.url).absolute()}"
        path = self.config.path if self.config else None
        origins = self.config.origins if self.config else {}
        return Config(data, path, origins)

    def staff(self) -> Actor:
        """The configured on-call actor (``--actor id:role`` or ``IAP_FLOW_ACTOR``)."""
        if not self.actor_spec:
            raise SetupError(
                "write commands act as a configured staff member: give --actor ID:ROLE "
                "(or set IAP_FLOW_ACTOR), e.g. --actor lin:support_lead"
            )
        actor_id, _, role = self.actor_spec.partition(":")
        try:
            return Actor(actor_id.strip(), Role(role.strip() or "support_agent"))
        except (ValueError, IapFlowError):
            roles = ", ".join(r.value for r in Role if r is not Role.BUYER)
            raise SetupError(
                f"--actor must be ID:ROLE with ROLE one of {roles}; got {self.actor_spec!r}"
            ) from None


@click.group(cls=FlowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="IAP_FLOW_DB",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    help="Store URL (sqlite:///orders.db, postgresql://...) or an SQLite file path. "
    "It must exist (create it with `init`).",
)
@click.option(
    "--actor",
    "actor_spec",
    envvar="IAP_FLOW_ACTOR",
    show_envvar=True,
    help="Staff member the write commands act as, ID:ROLE (lin:support_lead).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="IAP_FLOW_LOG_FORMAT",
    default="text",
    show_envvar=True,
    help="Log lines on stderr as text or one JSON object per line.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="IAP_FLOW_LOG_LEVEL",
    default="warning",
    show_default=True,
    show_envvar=True,
    help="info logs every command with its ids and outcome.",
)
@click.option(
    "--config",
    "config_file",
    envvar="IAP_FLOW_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
    help="The deployment's TOML configuration (store, platforms, notifications, policy, Slack).",
)
@click.version_option(package_name="iap-flow")
@click.pass_context
def cli(
    ctx: click.Context,
    db: str,
    config_file: Path | None,
    actor_spec: str | None,
    log_format: str,
    log_level: str,
) -> None:
    """Order management for in-app purchases: orders, refunds, feedback, deadlines.

    Reads and reports run as the developer actor "cli"; `sweep` and `worker` as the system
    actor; approve, reject, payout and notify as the staff member given by --actor.
    Exit codes: 0 done, 1 refused by the process, 2 could not start (usage, store, extra).
    """
    observability.configure_logging(log_format, log_level)
    config = load_config(config_file) if config_file is not None else None
    explicit = ctx.get_parameter_source("db") not in (None, ParameterSource.DEFAULT)
    url = db_url(db) if explicit or config is None else config.store_url
    ctx.obj = Settings(url, config=config, actor_spec=actor_spec)


def main() -> None:
    """Console-script entry point (``iap-flow``)."""
    cli(prog_name="iap-flow")
