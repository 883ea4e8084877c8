"""The ``iap-flow`` command line, the demo simulation and the process-document generator.

These sit on top of the public API; nothing in the core imports them.
"""

from iap_flow.cli.commands import (
    PLUGINS,
    Plugin,
    Settings,
    cli,
    db_url,
    main,
    notifications_path,
    since_option,
    until_option,
)

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
