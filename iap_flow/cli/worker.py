"""``iap-flow worker``: the sweep and outbox delivery in a loop, with a metrics endpoint.

Run one (or several: the store's claims keep deliveries and sweeps from doubling) next to
an application that opens its flow with ``deliver_inline=False``, or instead of a cron
``sweep``. Each cycle, as the system actor: act on due deadlines, deliver waiting
notifications, then refresh the gauges alerts watch (outbox backlog and its oldest age, the
most overdue open deadline). SIGTERM or Ctrl-C stops it after the cycle in progress.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from iap_flow import observability
from iap_flow.cli.commands import Settings, cli
from iap_flow.cli.stores import SetupError
from iap_flow.domain.errors import IapFlowError
from iap_flow.domain.roles import SYSTEM
from iap_flow.flow import Flow


def health(flow: Flow) -> dict[str, float]:
    """The figures on-call alerts on, read from the store now."""
    now = flow.clock.now()
    backlog = flow.outbox_backlog(SYSTEM)
    oldest = backlog.oldest
    overdue = [d.due_at for d in flow.deadlines_due(SYSTEM) if d.due_at < now]
    return {
        "outbox_backlog": float(backlog.pending),
        "outbox_oldest_age_seconds": 0.0 if oldest is None else (now - oldest).total_seconds(),
        "deadlines_overdue": float(len(overdue)),
        "deadline_oldest_overdue_seconds": (now - min(overdue)).total_seconds() if overdue else 0.0,
    }


def _publish(figures: dict[str, float]) -> None:
    made = observability.metrics()
    if made is None:
        return
    made.outbox_backlog.set(figures["outbox_backlog"])
    made.outbox_oldest.set(figures["outbox_oldest_age_seconds"])
    made.deadlines_overdue.set(figures["deadlines_overdue"])
    made.deadline_oldest_overdue.set(figures["deadline_oldest_overdue_seconds"])


def cycle(flow: Flow) -> dict[str, float]:
    """One round: sweep, deliver, measure. Returns what it did and the health figures."""
    with observability.span("iap_flow.worker.cycle"):
        result = flow.sweep(SYSTEM)
        delivered = flow.deliver_notifications(SYSTEM)
        figures = health(flow)
    done = {
        "expired": result.expired,
        "reminded": result.reminded,
        "escalated": result.escalated,
        "retried": result.retried,
        "delivered": result.delivered + delivered,
    }
    made = observability.metrics()
    if made is not None:
        for kind, n in done.items():
            made.sweep_actions.labels(kind).inc(n)
        made.last_cycle.set_to_current_time()
    _publish(figures)
    return {**done, **figures}


@cli.command()
@click.option(
    "--every",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="Seconds between cycles.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics on this port (0: any free port; needs the metrics extra).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--cycles", type=click.IntRange(min=1), help="Stop after this many cycles.")
@click.option(
    "--notifications",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file for the notifications it sends (default: next to the database).",
)
@click.pass_obj
def worker(
    settings: Settings,
    every: float,
    metrics_port: int | None,
    metrics_host: str,
    cycles: int | None,
    notifications: Path | None,
) -> None:
    """Sweep deadlines and deliver notifications in a loop, as the system actor."""
    if metrics_port is not None and observability.metrics() is None:
        raise SetupError("--metrics-port needs the metrics extra: pip install 'iap-flow[metrics]'")
    stop = threading.Event()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    with settings.open(notifications) as flow:
        server = None
        if metrics_port is not None:
            server = observability.serve_metrics(metrics_port, metrics_host)
            host, port = server.server_address[:2]
            click.echo(f"iap-flow worker: metrics on http://{host}:{port}/metrics", err=True)
        previous = signal.signal(signal.SIGTERM, interrupt)
        done = 0
        try:
            while not stop.is_set():
                try:
                    figures = cycle(flow)
                    observability.log(logging.INFO, "worker cycle", **figures)
                except IapFlowError as exc:  # recorded, counted, retried next cycle
                    observability.log(logging.ERROR, "worker cycle failed", error=str(exc))
                    made = observability.metrics()
                    if made is not None:
                        made.worker_errors.labels(type(exc).__name__).inc()
                done += 1
                if cycles is not None and done >= cycles:
                    break
                stop.wait(every)
        except KeyboardInterrupt:  # Ctrl-C: stop like SIGTERM
            stop.set()
        finally:
            signal.signal(signal.SIGTERM, previous)
            if server is not None:
                server.shutdown()
        observability.note(cycles=done)
        click.echo(f"iap-flow worker: stopping after {done} cycles", err=True)
