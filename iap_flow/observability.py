"""Structured logs, Prometheus metrics and OpenTelemetry spans, each optional.

* Logs go through :mod:`logging` under the ``iap_flow`` logger; :func:`configure_logging`
  writes them to stderr as text or one JSON object per line.
* Metrics use ``prometheus_client`` (the ``metrics`` extra) in a registry of their own;
  without the extra every metric call is a no-op and :func:`serve_metrics` refuses.
* Spans use ``opentelemetry-api`` (the ``otel`` extra); without it :func:`span` does nothing.

Nothing here is built at import time: the registry and tracer come on first use.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs

LOGGER = logging.getLogger("iap_flow")
_HANDLER_NAME = "iap_flow.cli"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """``level logger: message key=value ...``, values quoted when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        pairs = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        return f"{record.levelname.lower()} {record.name}: {record.getMessage()} {pairs}".rstrip()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (not the one at set-up)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # the base class assigns it; ignore
        pass


def configure_logging(
    fmt: str = "text", level: str = "warning", stream: TextIO | None = None
) -> None:
    """Send ``iap_flow`` logs to ``stream`` (stderr) as ``text`` or ``json`` from ``level``.

    The level is the handler's: the ``iap_flow`` logger is only opened further when ``level``
    asks for more than it lets through, and it keeps propagating. So calling this in-process
    (the CLI under a test runner or an embedder) neither hides records from handlers on the
    root logger (pytest's ``caplog``) nor silences levels they asked for.
    """
    wanted = logging.getLevelName(level.upper())
    if not isinstance(wanted, int):
        raise ValueError(f"unknown log level {level!r}")
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(wanted)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for old in [h for h in LOGGER.handlers if h.get_name() == _HANDLER_NAME]:
        LOGGER.removeHandler(old)
    LOGGER.addHandler(handler)
    if LOGGER.getEffectiveLevel() > wanted:
        LOGGER.setLevel(wanted)


def set_level(level: str) -> None:
    """Let ``iap_flow`` records from ``level`` through the handler :func:`configure_logging`
    installed (keeping its format), or install a text one on stderr.

    For servers that take their own ``--log-level``: unlike ``logging.basicConfig`` this adds
    no second handler on the root logger, through which every ``iap_flow`` record (which
    propagates) would print twice.
    """
    wanted = logging.getLevelName(level.upper())
    if not isinstance(wanted, int):
        raise ValueError(f"unknown log level {level!r}")
    ours = [h for h in LOGGER.handlers if h.get_name() == _HANDLER_NAME]
    if not ours:
        configure_logging("text", level)
        return
    for handler in ours:
        handler.setLevel(wanted)
    if LOGGER.getEffectiveLevel() > wanted:
        LOGGER.setLevel(wanted)


def log(level: int, message: str, **fields: Any) -> None:
    """A structured log line: ``fields`` become JSON keys (or ``key=value`` in text)."""
    LOGGER.log(level, message, extra={"fields": fields})


# -- metrics ----------------------------------------------------------------------------------
@attrs.define
class Metrics:
    """The process's metrics, in their own registry (so tests and embedders do not clash)."""

    registry: Any
    commands: Any
    latency: Any
    outbox_backlog: Any
    outbox_oldest: Any
    deadlines_overdue: Any
    deadline_oldest_overdue: Any
    sweep_actions: Any
    worker_errors: Any
    last_cycle: Any
    platform_calls: Any
    platform_failures: Any
    payout_failures: Any
    store_errors: Any


_METRICS: list[Metrics] = []


def metrics() -> Metrics | None:
    """The metrics, made on first call; None without the ``metrics`` extra."""
    if _METRICS:
        return _METRICS[0]
    try:
        prom = importlib.import_module("prometheus_client")
    except ImportError:
        return None
    registry = prom.CollectorRegistry()
    ns = "iap_flow"
    made = Metrics(
        registry=registry,
        commands=prom.Counter(
            "commands",
            "Commands run, by outcome.",
            ["command", "outcome"],
            namespace=ns,
            registry=registry,
        ),
        latency=prom.Histogram(
            "command_seconds", "Command latency.", ["command"], namespace=ns, registry=registry
        ),
        outbox_backlog=prom.Gauge(
            "outbox_backlog", "Notifications not delivered yet.", namespace=ns, registry=registry
        ),
        outbox_oldest=prom.Gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest undelivered notification (0 when none).",
            namespace=ns,
            registry=registry,
        ),
        deadlines_overdue=prom.Gauge(
            "deadlines_overdue", "Open deadlines past due.", namespace=ns, registry=registry
        ),
        deadline_oldest_overdue=prom.Gauge(
            "deadline_oldest_overdue_seconds",
            "How long the most overdue open deadline is past due (0 when none).",
            namespace=ns,
            registry=registry,
        ),
        sweep_actions=prom.Counter(
            "sweep_actions", "What sweeps did, by kind.", ["kind"], namespace=ns, registry=registry
        ),
        worker_errors=prom.Counter(
            "worker_errors",
            "Worker cycles that failed, by error.",
            ["error"],
            namespace=ns,
            registry=registry,
        ),
        last_cycle=prom.Gauge(
            "worker_last_cycle_timestamp_seconds",
            "When the worker last finished a cycle (Unix time).",
            namespace=ns,
            registry=registry,
        ),
        platform_calls=prom.Counter(
            "platform_calls",
            "Payment platform calls, by platform, call and outcome (ok, declined, error).",
            ["platform", "call", "outcome"],
            namespace=ns,
            registry=registry,
        ),
        platform_failures=prom.Counter(
            "platform_failures",
            "Payment platform calls that raised (no answer, or a fault), by error.",
            ["platform", "call", "error"],
            namespace=ns,
            registry=registry,
        ),
        payout_failures=prom.Counter(
            "payout_failures",
            "Refund payouts the platform refused or did not answer.",
            ["platform"],
            namespace=ns,
            registry=registry,
        ),
        store_errors=prom.Counter(
            "store_errors",
            "Commands whose store transaction failed, by error.",
            ["error"],
            namespace=ns,
            registry=registry,
        ),
    )
    _METRICS.append(made)
    return made


def platform_call(platform: str, call: str, outcome: str, error: str | None = None) -> None:
    """Count one payment platform call; a refused or unanswered refund is a failed payout."""
    made = metrics()
    if made is None:
        return
    made.platform_calls.labels(platform, call, outcome).inc()
    if outcome == "error":
        made.platform_failures.labels(platform, call, error or "unknown").inc()
    if call == "refund" and outcome != "ok":
        made.payout_failures.labels(platform).inc()


def store_error(error: str) -> None:
    """Count a store transaction that failed (``StoreError`` and its kinds)."""
    made = metrics()
    if made is not None:
        made.store_errors.labels(error).inc()


def exposition() -> bytes:
    """This process's iap_flow metrics in the Prometheus text format (empty without the extra)."""
    made = metrics()
    if made is None:
        return b""
    prom = importlib.import_module("prometheus_client")
    data: bytes = prom.generate_latest(made.registry)
    return data


def serve_metrics(port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a thread; returns the server (``shutdown()``)."""
    made = metrics()
    if made is None:
        raise ImportError("metrics need the metrics extra: pip install 'iap-flow[metrics]'")
    prom = importlib.import_module("prometheus_client")
    server, _thread = prom.start_http_server(port, addr=addr, registry=made.registry)
    return server


# -- traces -----------------------------------------------------------------------------------
_TRACE: Any = None
"""``opentelemetry.trace`` once looked up (False: not installed)."""


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """An OpenTelemetry span around a block, or nothing without ``opentelemetry-api`` or
    before a tracer provider is set (a span would then record nothing: the API's own
    no-op, without its cost on every platform call)."""
    global _TRACE
    trace = _TRACE
    if trace is None:
        try:
            trace = importlib.import_module("opentelemetry.trace")
        except ImportError:
            trace = False
        _TRACE = trace
    if trace is False:
        return nullcontext()
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return nullcontext()
    tracer = provider.get_tracer("iap_flow")
    clean = {k: str(v) for k, v in attributes.items() if v is not None}
    manager: AbstractContextManager[Any] = tracer.start_as_current_span(name, attributes=clean)
    return manager


# -- one command ------------------------------------------------------------------------------
@attrs.define
class CommandRecord:
    """What one command did; the CLI fills ``outcome`` and ``fields`` as it runs."""

    command: str = "?"
    outcome: str = "ok"
    fields: dict[str, Any] = attrs.Factory(dict)


_CURRENT: contextvars.ContextVar[CommandRecord | None] = contextvars.ContextVar(
    "iap_flow_command", default=None
)


def note(**fields: Any) -> None:
    """Add ids or figures to the running command's log line (``command=`` renames it)."""
    record = _CURRENT.get()
    if record is None:
        return
    name = fields.pop("command", None)
    if name:
        record.command = str(name)
    record.fields.update({k: v for k, v in fields.items() if v is not None})


@contextmanager
def command(name: str = "?") -> Iterator[CommandRecord]:
    """Time a command; log it with its outcome and ids; count it; trace it."""
    record = CommandRecord(name)
    token = _CURRENT.set(record)
    started = time.perf_counter()
    try:
        with span("iap_flow.command"):
            yield record
    except BaseException as exc:
        if record.outcome == "ok" and not _is_success(exc):
            record.outcome = "error"
            record.fields.setdefault("error", type(exc).__name__)
        raise
    finally:
        _CURRENT.reset(token)
        seconds = time.perf_counter() - started
        # A refusal or usage mistake is already told to the user in one line: info, not warning.
        log(
            logging.ERROR if record.outcome == "error" else logging.INFO,
            "command",
            command=record.command,
            outcome=record.outcome,
            duration_ms=round(seconds * 1000, 1),
            **record.fields,
        )
        made = metrics()
        if made is not None:
            made.commands.labels(record.command, record.outcome).inc()
            made.latency.labels(record.command).observe(seconds)


def _is_success(exc: BaseException) -> bool:
    code = getattr(exc, "exit_code", getattr(exc, "code", None))
    return isinstance(exc, SystemExit | Exception) and code == 0
