"""The Slack bot for support staff: a thin layer that turns Slack actions into core commands.

Install with ``pip install 'iap-flow[slack]'`` and run ``iap-flow slack``. Modules:
:mod:`.config` (environment, role mapping), :mod:`.app` (the bolt listeners),
:mod:`.reads` (what a screen shows, read through the core), :mod:`.blocks` (cards, modals),
:mod:`.screens` (queue, lookups, notices), :mod:`.notifier` (outbox notifications to the
review channel), :mod:`.serve` (HTTP server, outbox worker), :mod:`.cli` (``iap-flow slack``).
Nothing here is imported by the core, and nothing runs at import time.
"""
