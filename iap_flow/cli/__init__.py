"""The ``iap-flow`` command line, the demo simulation and the process-document generator.

These sit on top of the public API; nothing in the core imports them.
"""

from iap_flow.cli.commands import (
    PLUGINS,
    Settings,
    cli,
    db_url,
    main,
    notifications_path,
    since_option,
    until_option,
)
from iap_flow.cli.plugins import Plugin

# The command modules attach their commands to ``cli`` when imported.
from iap_flow.cli import admin, oncall, reads, reconcile, worker  # noqa: F401  # isort: skip

__all__ = [
    "PLUGINS",
    "Plugin",
    "Settings",
    "cli",
    "db_url",
    "main",
    "notifications_path",
    "since_option",
    "until_option",
]
