"""Every error type has its own stable ``code``, and the HTTP service knows its status."""

from __future__ import annotations

import importlib

from iap_flow.domain.errors import IapFlowError

MODULES = (
    "iap_flow.domain.errors",
    "iap_flow.http.problems",
    "iap_flow.adapters.webhooks",
    "iap_flow.adapters.googleplay.client",
    "iap_flow.adapters.relays.envelope",
)


def every_error() -> list[type[IapFlowError]]:
    for name in MODULES:
        importlib.import_module(name)
    found: list[type[IapFlowError]] = []
    todo: list[type[IapFlowError]] = [IapFlowError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith("iap_flow")]


def test_each_error_class_names_its_own_code() -> None:
    errors = every_error()
    assert len(errors) >= 15
    for cls in errors:
        assert "code" in vars(cls), f"{cls.__qualname__} inherits its code"
        assert cls.code.isidentifier() and cls.code == cls.code.lower()
    codes = [cls.code for cls in errors]
    assert len(codes) == len(set(codes)), codes


def test_the_http_service_maps_every_code_a_route_can_meet() -> None:
    from iap_flow.http.problems import STATUS, TITLES

    relay_only = {"relay_held_back", "relay_unavailable"}  # never raised by a request
    relay_only |= {"setup_error", "config_error"}  # a process that cannot start
    relay_only |= {"post_deferred"}  # the Slack bot's outbox sender, never a request
    for cls in every_error():
        if cls.code in relay_only or cls is IapFlowError or cls.code == "buyer_facing_error":
            continue
        assert cls.code in STATUS and cls.code in TITLES, cls.code
