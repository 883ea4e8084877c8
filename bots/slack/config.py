"""The bot's configuration (environment variables) and who is who: Slack users -> core roles.

A role is granted to Slack user ids (``U...``/``W...``) and/or user group ids (``S...``), one
comma-separated environment variable per role. Group members are read with
``usergroups.users.list`` and cached for a few minutes, so a change of membership in Slack
takes effect without a restart. Someone in several roles acts in the strongest one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping

import attrs
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from iap_flow.config import Config
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.roles import Actor, Role

log = logging.getLogger(__name__)

ROLE_ENV: dict[Role, str] = {
    Role.SUPPORT_LEAD: "IAP_FLOW_SLACK_SUPPORT_LEADS",
    Role.SUPPORT_AGENT: "IAP_FLOW_SLACK_SUPPORT_AGENTS",
    Role.DEVELOPER: "IAP_FLOW_SLACK_DEVELOPERS",
    Role.DATA_ANALYST: "IAP_FLOW_SLACK_DATA_ANALYSTS",
}
"""Role -> the variable listing its Slack users and groups; earlier roles win a tie."""

ROLE_KEYS: dict[str, Role] = {
    "support_leads": Role.SUPPORT_LEAD,
    "support_agents": Role.SUPPORT_AGENT,
    "developers": Role.DEVELOPER,
    "data_analysts": Role.DATA_ANALYST,
}
"""``[slack.roles]`` key -> role."""
SLACK_KEYS = (
    "bot_token",
    "signing_secret",
    "app_token",
    "review_channel",
    "command",
    "api_url",
    "role_cache_seconds",
    "roles",
    "mode",
    "host",
    "port",
    "deliver_every",
    "sweep_every",
)
DEFAULT_API_URL = "https://slack.com/api/"
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")


@attrs.frozen
class RoleMap:
    """Which Slack users and user groups hold which staff role."""

    users: Mapping[str, Role] = attrs.Factory(dict)
    groups: tuple[tuple[str, Role], ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[Role, str]) -> RoleMap:
        """Build from ``{role: "U01,U02,S03"}``; raise :class:`InvalidInput` on a bad id."""
        users: dict[str, Role] = {}
        groups: list[tuple[str, Role]] = []
        for role in ROLE_ENV:  # strongest first: the first role that names someone wins
            for item in (spec.get(role) or "").split(","):
                item = item.strip()
                if not item:
                    continue
                if _USER.match(item):
                    users.setdefault(item, role)
                elif _GROUP.match(item):
                    groups.append((item, role))
                else:
                    raise InvalidInput(
                        f"{ROLE_ENV[role]}: {item!r} is neither a Slack user id (U.../W...) "
                        "nor a user group id (S...)",
                        field=ROLE_ENV[role],
                    )
        return cls(users, tuple(groups))

    def is_empty(self) -> bool:
        return not self.users and not self.groups


@attrs.frozen
class SlackConfig:
    """Everything the bot needs to know; build it with :meth:`from_env`."""

    bot_token: str
    review_channel: str
    roles: RoleMap
    app_token: str | None = None
    signing_secret: str | None = None
    api_url: str = DEFAULT_API_URL
    command: str = "/iap"
    role_cache_seconds: float = 300.0

    @classmethod
    def from_config(cls, config: Config) -> SlackConfig:
        """Read the ``[slack]`` table of the configuration (secrets usually from
        ``SLACK_BOT_TOKEN`` / ``SLACK_SIGNING_SECRET`` / ``SLACK_APP_TOKEN``)."""
        table = config.section("slack").only(*SLACK_KEYS)
        token = table.text("bot_token")
        if token is None:
            raise table.error("bot_token", "is not set: export SLACK_BOT_TOKEN (xoxb-...)")
        channel = table.text("review_channel", required=True)
        if channel is None or not _CHANNEL.match(channel):
            raise table.error(
                "review_channel", f"must be the review channel's id (C...), got {channel!r}"
            )
        roles_table = table.table("roles").only(*ROLE_KEYS)
        spec = {role: ",".join(roles_table.names(key)) for key, role in ROLE_KEYS.items()}
        try:
            roles = RoleMap.parse(spec)
        except InvalidInput as exc:
            bad = next(k for k, r in ROLE_KEYS.items() if ROLE_ENV[r] == exc.field)
            raise roles_table.error(bad, str(exc).split(": ", 1)[1]) from None
        if roles.is_empty():
            raise roles_table.error("support_agents", "no Slack user or group has a role")
        command = table.text("command") or "/iap"
        if not command.startswith("/"):
            raise table.error("command", f"must start with '/', got {command!r}")
        return cls(
            bot_token=token,
            review_channel=channel,
            roles=roles,
            app_token=table.text("app_token"),
            signing_secret=table.text("signing_secret"),
            api_url=table.text("api_url") or DEFAULT_API_URL,
            command=command,
            role_cache_seconds=table.number("role_cache_seconds", 300.0),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackConfig:
        """Read the environment (see the README's Slack section); clear errors for gaps."""

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        bot_token = get("SLACK_BOT_TOKEN")
        if bot_token is None:
            raise InvalidInput(
                "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from the "
                "app's OAuth & Permissions page",
                field="SLACK_BOT_TOKEN",
            )
        channel = get("IAP_FLOW_SLACK_CHANNEL")
        if channel is None or not _CHANNEL.match(channel):
            raise InvalidInput(
                "IAP_FLOW_SLACK_CHANNEL must be the review channel's id (C..., from the "
                f"channel's details), got {channel!r}",
                field="IAP_FLOW_SLACK_CHANNEL",
            )
        roles = RoleMap.parse({role: env.get(name, "") for role, name in ROLE_ENV.items()})
        if roles.is_empty():
            raise InvalidInput(
                "no Slack user or group is mapped to a role: set "
                f"{ROLE_ENV[Role.SUPPORT_AGENT]} and/or {ROLE_ENV[Role.SUPPORT_LEAD]}",
                field=ROLE_ENV[Role.SUPPORT_AGENT],
            )
        command = get("IAP_FLOW_SLACK_COMMAND") or "/iap"
        if not command.startswith("/"):
            raise InvalidInput("IAP_FLOW_SLACK_COMMAND must start with '/'", field="command")
        cache = get("IAP_FLOW_SLACK_ROLE_CACHE_SECONDS") or "300"
        try:
            cache_seconds = float(cache)
        except ValueError:
            raise InvalidInput(
                f"IAP_FLOW_SLACK_ROLE_CACHE_SECONDS must be a number, got {cache!r}",
                field="IAP_FLOW_SLACK_ROLE_CACHE_SECONDS",
            ) from None
        return cls(
            bot_token=bot_token,
            review_channel=channel,
            roles=roles,
            app_token=get("SLACK_APP_TOKEN"),
            signing_secret=get("SLACK_SIGNING_SECRET"),
            api_url=get("IAP_FLOW_SLACK_API_URL") or DEFAULT_API_URL,
            command=command,
            role_cache_seconds=cache_seconds,
        )


def make_client(config: SlackConfig) -> WebClient:
    """The Web API client: the configured base URL, and retries for 429s and dropped calls."""
    return WebClient(
        token=config.bot_token,
        base_url=config.api_url,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class RoleResolver:
    """Slack user id -> core :class:`Actor`, reading user groups through the Web API (cached)."""

    def __init__(
        self,
        roles: RoleMap,
        client: WebClient,
        *,
        ttl_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._roles = roles
        self._client = client
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._refreshing: set[str] = set()

    def actor(self, user_id: str) -> Actor | None:
        """The actor this Slack user acts as, or None if no role is mapped to them."""
        best = self._roles.users.get(user_id)
        order = list(ROLE_ENV)
        for group, role in self._roles.groups:
            if best is not None and order.index(best) <= order.index(role):
                continue
            if user_id in self.members(group):
                best = role
        return None if best is None else Actor(user_id, best)

    def members(self, group_id: str) -> frozenset[str]:
        """The group's members. Only a group never read waits for Slack; a list past its
        time to live is returned as it is while a background thread reads it again (so a
        role check before an ack never waits on Slack). On a Slack error: the last known
        list (empty if none)."""
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(group_id)
            stale = hit is not None and now - hit[0] >= self._ttl
            refresh = stale and group_id not in self._refreshing
            if refresh:
                self._refreshing.add(group_id)
        if hit is None:
            return self._read(group_id)
        if refresh:
            threading.Thread(
                target=self._read, args=(group_id,), name="iap-slack-roles", daemon=True
            ).start()
        return hit[1]

    def warm(self) -> None:
        """Read every mapped user group now (at start), so no click waits for it later."""
        for group, _ in self._roles.groups:
            self._read(group)

    def _read(self, group_id: str) -> frozenset[str]:
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
            users = frozenset(str(u) for u in response.get("users") or [])
        except (SlackClientError, OSError) as exc:  # Slack said no, or could not be reached
            log.error("cannot read members of user group %s: %s", group_id, exc)
            with self._lock:
                self._refreshing.discard(group_id)
                hit = self._cache.get(group_id)
            return hit[1] if hit is not None else frozenset()
        with self._lock:
            self._cache[group_id] = (self._monotonic(), users)
            self._refreshing.discard(group_id)
        return users

    def lead_mention(self) -> str:
        """How to get the support leads' attention: their user group(s), else each lead."""
        groups = [f"<!subteam^{g}>" for g, role in self._roles.groups if role is Role.SUPPORT_LEAD]
        if groups:
            return " ".join(groups)
        leads = [f"<@{u}>" for u, role in self._roles.users.items() if role is Role.SUPPORT_LEAD]
        return " ".join(leads) or "support leads"
