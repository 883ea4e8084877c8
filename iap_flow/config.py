"""One configuration for every process: a TOML file, environment variables for secrets and
overrides, and :func:`open_flow_from_config`, which builds the flow from it.

The app backend, ``iap-flow slack``, ``iap-flow sweep`` and ``iap-flow webhooks`` all open
their flow here, so they agree on the store, the payment platforms, the policy and where each
audience's notifications go. A destination is ``stdout``, ``jsonl:<path>`` (any process can
write it) or a name that a process hands over itself (``slack`` is the bot's review channel,
``app`` an embedding backend's push service): a process delivers only the audiences it has a
destination for, and leaves the rest in the outbox for the process that has.

Every refusal is a :class:`ConfigError` naming the key and the file (or the variable) it came
from. See ``examples/iap-flow.example.toml`` for every key.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs

from iap_flow import config_service
from iap_flow.config_policy import review_answer
from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.models import Audience, Notification
from iap_flow.domain.policy import Policy
from iap_flow.flow import DEFAULT_URL, Flow, open_flow
from iap_flow.ports import Notifier, PaymentPlatform

CONFIG_ENV = "IAP_FLOW_CONFIG"
"""The variable naming the configuration file when no path is given."""
SECRET_ENV: dict[str, str] = {
    "IAP_FLOW_STORE_URL": "store.url",
    "SLACK_BOT_TOKEN": "slack.bot_token",
    "SLACK_SIGNING_SECRET": "slack.signing_secret",
    "SLACK_APP_TOKEN": "slack.app_token",
    "IAP_FLOW_GOOGLE_PLAY_PUSH_TOKEN": "platforms.google_play.push_token",
}
"""Well-known variables -> the key they set (they win over the file)."""
OVERRIDE_PREFIX = "IAP_FLOW__"
"""``IAP_FLOW__SLACK__REVIEW_CHANNEL=C0123`` sets ``slack.review_channel`` (any key)."""
DEFAULT_DESTINATIONS = {Audience.BUYER: "stdout", Audience.STAFF: "slack"}
"""Without a file: buyers' notifications as JSON lines on stdout, staff's to the Slack bot."""
PLATFORM_KEYS = ("sandbox", "app_store", "google_play")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_POLICY_DURATIONS = (
    "order_payment",
    "refund_review",
    "ticket_first_response",
    "ticket_resolution",
    "refund_window",
    "refund_retry_delay",
    "acknowledge_delay",
    "acknowledge_retry_delay",
    "acknowledge_escalate_after",
)


class ConfigError(InvalidInput):
    """A configuration value is missing or wrong; ``key`` and ``source`` say where."""

    code: ClassVar[str] = "config_error"

    def __init__(self, key: str, source: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}", field=key)
        self.key = key
        self.source = source


class Section:
    """One table of the configuration: typed reads that name the key and its source."""

    def __init__(self, data: Mapping[str, Any], prefix: str, config: Config) -> None:
        self._data = data
        self._prefix = prefix
        self._config = config

    def key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def error(self, name: str, problem: str) -> ConfigError:
        key = self.key(name)
        return ConfigError(key, self._config.source_of(key), problem)

    def has(self, name: str) -> bool:
        return name in self._data

    def entries(self) -> list[str]:
        return list(self._data)

    def resolve(self, value: str) -> Path:
        """A path from the file, relative to the file's folder."""
        return self._config.resolve(value)

    def raw(self, name: str, default: Any = None) -> Any:
        return self._data.get(name, default)

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._data.get(name, default)
        if value is None:
            if required:
                raise self.error(name, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def need(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def number(self, name: str, default: float, *, minimum: float = 0) -> float:
        value = self._data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.error(name, f"must be a number of at least {minimum}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(name, f"must be a whole number of at least {minimum}, got {value!r}")
        return value

    def names(self, name: str) -> list[str]:
        value = self._data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be a list of strings, got {value!r}")
        return [v.strip() for v in value if v.strip()]

    def file(self, name: str, *, required: bool = True) -> Path | None:
        """A path (relative to the configuration file) to a file that must exist."""
        value = self.text(name, required=required)
        if value is None:
            return None
        path = self.resolve(value)
        if not path.is_file():
            raise self.error(name, f"no such file: {path}")
        return path

    def duration(self, name: str, default: timedelta) -> timedelta:
        value = self._data.get(name)
        if value is None:
            return default
        match = _DURATION.match(value.strip()) if isinstance(value, str) else None
        if match is None or int(match.group(1)) == 0:
            raise self.error(
                name, f"must be a duration like '90s', '30m', '24h' or '14d', got {value!r}"
            )
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})

    def table(self, name: str) -> Section:
        value = self._data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"must be a table ([{self.key(name)}]), got {value!r}")
        return Section(value, self.key(name), self._config)

    def only(self, *allowed: str) -> Section:
        """Refuse keys this section does not know (a typo would otherwise be ignored)."""
        for name in self._data:
            if name not in allowed:
                raise self.error(name, f"unknown key; expected one of: {', '.join(allowed)}")
        return self


@attrs.frozen
class Config:
    """The parsed configuration file plus environment overrides; read sections with
    :meth:`section`. Build it with :func:`load_config`."""

    data: Mapping[str, Any]
    path: Path | None = None
    origins: Mapping[str, str] = attrs.Factory(dict)
    """Dotted key -> the environment variable that set it."""

    def source_of(self, key: str) -> str:
        for known, variable in self.origins.items():
            if key == known or key.startswith(known + "."):
                return f"environment variable {variable}"
        return str(self.path) if self.path is not None else "the built-in defaults"

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        return path

    def section(self, name: str) -> Section:
        return Section(self.data, "", self).table(name)

    @property
    def store_url(self) -> str:
        return self.section("store").only("url").text("url") or DEFAULT_URL

    def destinations(self) -> dict[Audience, str]:
        """Audience -> destination (``stdout``, ``jsonl:<path>`` or a process-given name)."""
        table = self.section("notifications").only(*(a.value for a in Audience))
        return {a: table.text(a.value) or DEFAULT_DESTINATIONS[a] for a in Audience}

    def policy(self) -> Policy:
        table = self.section("policy")
        table.only(
            *_POLICY_DURATIONS,
            *config_service.KEYS,
            "refund_max_attempts",
            "remind_at_fraction",
            "agent_refund_limits",
            "review_answer",
        )
        base = Policy()
        values: dict[str, Any] = {
            name: table.duration(name, getattr(base, name)) for name in _POLICY_DURATIONS
        }
        values["refund_max_attempts"] = table.integer(
            "refund_max_attempts", base.refund_max_attempts, minimum=1
        )
        fraction = table.number("remind_at_fraction", base.remind_at_fraction)
        if not 0 < fraction < 1:
            raise table.error("remind_at_fraction", f"must be between 0 and 1, got {fraction}")
        values["remind_at_fraction"] = fraction
        if table.has("agent_refund_limits"):
            limits = table.table("agent_refund_limits")
            values["agent_refund_limits"] = {
                cur: limits.integer(cur, 0) for cur in limits.entries() if _currency(limits, cur)
            }
        if table.has("review_answer"):
            values["review_answer"] = review_answer(table.table("review_answer"))
        values |= config_service.service_levels(table, base)
        return Policy(**values)

    def platforms(self) -> list[PaymentPlatform]:
        """The configured payment platforms, the default one first (sandbox if none)."""
        table = self.section("platforms").only("default", *PLATFORM_KEYS)
        names = [name for name in PLATFORM_KEYS if table.has(name)] or ["sandbox"]
        default = table.text("default") or names[0]
        if default not in names:
            raise table.error(
                "default", f"must be one of the configured platforms {names}, got {default!r}"
            )
        names.sort(key=lambda n: n != default)
        builders = importlib.import_module("iap_flow.config_platforms")
        return [getattr(builders, name)(table.table(name)) for name in names]


def _currency(table: Section, code: str) -> bool:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise table.error(code, "must be an ISO 4217 currency code (USD, EUR, ...)")
    return True


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or ``$IAP_FLOW_CONFIG``; none: the defaults) and apply the environment."""
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV, "").strip():
        path = env[CONFIG_ENV].strip()
    data: dict[str, Any] = {}
    file = None
    if path is not None:
        file = Path(path).expanduser().absolute()
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("(file)", str(file), "no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("(syntax)", str(file), f"not valid TOML: {exc}") from None
    origins: dict[str, str] = {}
    for variable, value in sorted(env.items()):
        key = SECRET_ENV.get(variable)
        if key is not None and key.count(".") > 1 and not _has(data, key.rsplit(".", 1)[0]):
            continue  # a platform's secret configures nothing by itself
        if key is None and variable.startswith(OVERRIDE_PREFIX):
            key = ".".join(p.lower() for p in variable[len(OVERRIDE_PREFIX) :].split("__"))
        if key is None or not value.strip():
            continue
        _set(
            data,
            key,
            _parse_value(value),
            ConfigError(
                key, f"environment variable {variable}", "cannot set it: its parent is not a table"
            ),
        )
        origins[key] = variable
    for name in data:
        if name not in ("store", "platforms", "notifications", "policy", "slack", "webhooks"):
            raise ConfigError(name, str(file) if file else "the environment", "unknown section")
    return Config(data, file, origins)


def _has(data: Mapping[str, Any], key: str) -> bool:
    for part in key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


def _parse_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _set(data: dict[str, Any], key: str, value: Any, error: ConfigError) -> None:
    *parents, last = key.split(".")
    for part in parents:
        child = data.setdefault(part, {})
        if not isinstance(child, dict):
            raise error
        data = child
    data[last] = value


class AudienceNotifier:
    """Hands each notification to its audience's notifier; refuses (the outbox keeps it) one
    whose audience this process has no destination for."""

    def __init__(self, notifiers: Mapping[Audience, Notifier]) -> None:
        self._notifiers = dict(notifiers)

    def send(self, notification: Notification) -> None:
        notifier = self._notifiers.get(notification.audience)
        if notifier is None:
            raise InvalidInput(
                f"this process has no destination for {notification.audience}'s notifications"
            )
        notifier.send(notification)


def audience_notifiers(
    config: Config, given: Mapping[str, Notifier] | None = None
) -> dict[Audience, Notifier]:
    """The notifier of every audience this process can deliver: ``stdout`` and ``jsonl:``
    destinations always, a named one when ``given`` has it."""
    given = given or {}
    notifiers_module = importlib.import_module("iap_flow.adapters.notifiers")
    found: dict[Audience, Notifier] = {}
    for audience, where in config.destinations().items():
        if where == "stdout":
            found[audience] = notifiers_module.JsonLinesNotifier()
        elif where.startswith("jsonl:"):
            target = where.removeprefix("jsonl:").strip()
            if not target:
                raise config.section("notifications").error(
                    audience.value, "jsonl: needs a path, e.g. jsonl:/var/lib/iap-flow/buyers.jsonl"
                )
            found[audience] = notifiers_module.JsonLinesNotifier(config.resolve(target))
        elif where in given:
            found[audience] = given[where]
    return found


def open_flow_from_config(
    config: Config | str | Path | None = None,
    *,
    notifiers: Mapping[str, Notifier] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Flow:
    """Open the flow a configuration describes; every process of a deployment calls this.

    ``notifiers`` are the named destinations this process provides (``{"slack": ...}`` in the
    bot, ``{"app": ...}`` in a backend that pushes to buyers). ``overrides`` go to
    :func:`~iap_flow.flow.open_flow` and win over the file (``url``, ``platforms``,
    ``clock``, ``policy``, ``seed``, ``deliver_inline``).

    >>> from iap_flow.config import load_config, open_flow_from_config
    >>> config = load_config(env={"IAP_FLOW_STORE_URL": "sqlite://"})
    >>> with open_flow_from_config(config, env={}) as flow:
    ...     flow.catalogue.products()
    []
    """
    if not isinstance(config, Config):
        config = load_config(config, env=env)
    url = overrides.pop("url", None) or config.store_url
    routes = audience_notifiers(config, notifiers)
    if "audiences" in overrides:  # a process may take on fewer audiences than it could
        wanted = {Audience(str(a)) for a in overrides.pop("audiences")}
        routes = {a: n for a, n in routes.items() if a in wanted}
    overrides.setdefault("policy", config.policy())
    if "platforms" not in overrides:
        overrides["platforms"] = config.platforms()
    return open_flow(url, notifier=AudienceNotifier(routes), audiences=tuple(routes), **overrides)
