"""Commands that live in optional parts of the package or in other distributions.

A plugin is an entry point in the ``iap_flow.cli_plugins`` group: its name is the command's,
its value the ``module:attribute`` of a :class:`click.Command`, and ``[extra]`` after it the
pip extra that brings the command's dependencies. iap-flow declares its own in
``pyproject.toml``; another distribution adds a command the same way::

    [project.entry-points."iap_flow.cli_plugins"]
    refunds-audit = "my_company.audit:command [audit]"

Nothing is imported until a command is run (or ``--help`` lists one with no help of its own);
a command whose module cannot be imported says which extra to install and exits 2.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator, MutableMapping
from importlib import metadata
from importlib.metadata import entry_points

import attrs
import click
from packaging.requirements import Requirement

GROUP = "iap_flow.cli_plugins"
"""The entry-point group of ``iap-flow`` subcommands."""


@attrs.frozen
class Plugin:
    """A command that lives in an optional part of the package, imported only when run."""

    target: str
    """``module:attribute`` of a :class:`click.Command`."""
    extra: str | None
    """The pip extra that brings its dependencies (None: it needs none)."""
    help: str | None = None
    """Shown by ``iap-flow --help`` without importing it; None: the command's own help."""
    requires: tuple[str, ...] = ()
    """Modules checked before the command runs, so a missing extra fails at once."""
    distribution: str = "iap-flow"
    """The distribution whose extra it is (a third party's plugin names its own)."""

    def missing(self) -> str | None:
        """Why the command cannot run here (a module or the extra's distribution absent)."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"no module named {module!r}"
        if self.extra is None:
            return None
        try:
            wanted = metadata.requires(self.distribution) or []
        except metadata.PackageNotFoundError:
            return None
        for line in wanted:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or not marker.evaluate({"extra": self.extra}):
                continue
            if marker.evaluate({"extra": ""}):
                continue  # not specific to this extra
            try:
                metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                return f"{requirement.name} is not installed"
        return None


class EntryPointPlugins(MutableMapping[str, Plugin]):
    """The plugins installed distributions declare in ``group``, read when first asked for.

    >>> from iap_flow.cli.plugins import EntryPointPlugins
    >>> plugins = EntryPointPlugins()
    >>> plugins["slack"]
    Plugin(target='iap_flow.bots.slack.cli:command', extra='slack', help=None, requires=(), distribution='iap-flow')
    """

    def __init__(self, group: str = GROUP) -> None:
        self._group = group
        self._found: dict[str, Plugin] | None = None

    def _plugins(self) -> dict[str, Plugin]:
        if self._found is None:
            found = {}
            for point in entry_points(group=self._group):
                extra = point.extras[0] if point.extras else None
                dist = point.dist.name if point.dist is not None else "iap-flow"
                target = f"{point.module}:{point.attr}"
                found[point.name] = Plugin(target, extra, distribution=dist)
            self._found = found
        return self._found

    def __getitem__(self, name: str) -> Plugin:
        return self._plugins()[name]

    def __setitem__(self, name: str, plugin: Plugin) -> None:
        self._plugins()[name] = plugin

    def __delitem__(self, name: str) -> None:
        del self._plugins()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins())

    def __len__(self) -> int:
        return len(self._plugins())


class PluginCommand(click.Command):
    """A placeholder listed in ``--help``; the group swaps in the real command when run."""

    def __init__(self, name: str, plugin: Plugin, error: Callable[[str], None]) -> None:
        super().__init__(name, help=plugin.help, short_help=plugin.help)
        self.plugin = plugin
        self._error = error

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.plugin.help is not None:
            return super().get_short_help_str(limit)
        command = self.load()
        if isinstance(command, _Missing):
            return f"(needs the {self.plugin.extra} extra)" if self.plugin.extra else "(broken)"
        return command.get_short_help_str(limit)

    def load(self) -> click.Command:
        """The real command, or one that says which extra to install and exits 2."""
        absent = self.plugin.missing()
        if absent is not None:
            return self._missing(absent)
        module_name, _, attribute = self.plugin.target.partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except ImportError as exc:
            return self._missing(f"{exc}")
        except AttributeError:
            return self._missing(f"{module_name} has no {attribute}")
        if not isinstance(command, click.Command):
            return self._missing(f"{self.plugin.target} is not a click command")
        return command

    def _missing(self, why: str) -> click.Command:
        name, extra, error = self.name, self.plugin.extra, self._error
        if extra is None:
            message = f"the {name} command cannot be loaded ({why})"
        else:
            hint = f"pip install '{self.plugin.distribution}[{extra}]'"
            message = f"the {name} command needs the {extra} extra: {hint} ({why})"

        def fail() -> None:
            error(message)
            raise click.exceptions.Exit(2)

        return _Missing(
            name,
            callback=fail,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )


class _Missing(click.Command):
    """Stands in for a plugin that cannot be imported."""
