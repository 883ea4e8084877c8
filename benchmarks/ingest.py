"""Store notifications ingested per second, verification included, per platform.

App Store: ONE_TIME_CHARGE notifications signed with a local chain shaped like Apple's
(root -> intermediate -> leaf, EC P-256), each verified by app-store-server-library's
SignedDataVerifier (strict chain checks at now and at signedDate, no OCSP) twice: the
notification and the signed transaction inside it; the verified chain cached (keyed by its
exact bytes) as configured by default, and again with the cache off (``chain_cache_size=0``).
Verification alone (both JWS of every notification, no flow) is timed beside ingest.
Google Play: Pub/Sub pushes of ONE_TIME_PRODUCT_PURCHASED, each with its own OIDC token
(RS256, verified against certificates the local fake serves, cached), decoded and checked,
then the purchase looked up with androidpublisher (packaged discovery document) on a local
HTTP server. Each notification then records and pays an order on a
SQLite file (WAL) and is remembered; a second pass delivers every notification again
(duplicates: verified, nothing written, the first result returned).

The raw baseline writes what one recorded purchase writes, with sqlite3 and no verification:
INSERT order, 2 audit events, UPDATE order, close deadlines, INSERT outbox, INSERT
idempotency row (one transaction), mark the notification delivered, INSERT processed event.

    python benchmarks/ingest.py [N]

Signing the test payloads happens before timing. The fakes come from tests/e2e.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the local Apple and Google fakes

import httplib2  # type: ignore[import-untyped]  # noqa: E402
from apple_fakes import APP_APPLE_ID, BUNDLE_ID, Apple, Chain  # noqa: E402
from appstoreserverlibrary.models.Environment import Environment  # noqa: E402
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier  # noqa: E402
from play_fakes import (  # noqa: E402
    AUDIENCE,
    PACKAGE,
    PUSHER,
    FakePlay,
    one_time,
    product_purchase,
    push,
)

from iap_flow import Actor, Flow, ManualClock, Money, open_flow  # noqa: E402
from iap_flow.adapters import webhooks  # noqa: E402
from iap_flow.adapters.appstore import AppStoreNotifications, AppStorePlatform  # noqa: E402
from iap_flow.adapters.googleplay import (  # noqa: E402
    GooglePlayNotifications,
    GooglePlayPlatform,
    PlayClient,
    PubSubPushAuth,
    androidpublisher,
)
from iap_flow.adapters.googleplay import ingest as play_ingest  # noqa: E402
from iap_flow.adapters.notifiers import MemoryNotifier  # noqa: E402
from iap_flow.adapters.sqlite_store import SQLiteStore  # noqa: E402
from iap_flow.codec import ORDER_COLUMNS, ts  # noqa: E402

ROUNDS = 3
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Timer:
    """Accumulates the time spent inside the functions it wraps."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed


def _flow(path: Path, platform: Any) -> Flow:
    flow = open_flow(
        f"sqlite:///{path}",
        platforms=[platform],
        clock=ManualClock(START),
        notifier=MemoryNotifier(),
        seed=3,
    )
    flow.catalogue.add(
        Actor("pm", "product_manager"),
        sku="gems",
        title="Gems",
        description="d",
        price=Money(199, "USD"),
        kind="consumable",
    )
    return flow


def _apple_platform(chain: Chain, cache_size: int) -> AppStorePlatform:
    return AppStorePlatform(
        bundle_id=BUNDLE_ID,
        app_apple_id=APP_APPLE_ID,
        environment=Environment.SANDBOX,
        root_certificates=[chain.root_der],
        enable_online_checks=False,
        require_account_token=False,
        chain_cache_size=cache_size,
    )


def verification_alone(payloads: list[str], chain: Chain, cache_size: int | None) -> float:
    """Seconds to verify every notification and its transaction, with no flow at all;
    ``cache_size=None``: app-store-server-library's SignedDataVerifier as shipped."""
    platform: Any = _apple_platform(chain, cache_size or 0)
    if cache_size is None:
        platform = SignedDataVerifier(
            [chain.root_der], False, Environment.SANDBOX, BUNDLE_ID, APP_APPLE_ID
        )
        platform.verify_notification = platform.verify_and_decode_notification
        platform.verify_transaction = platform.verify_and_decode_signed_transaction

    def run() -> None:
        for signed in payloads:
            note = platform.verify_notification(signed)
            assert note.data is not None and note.data.signedTransactionInfo is not None
            platform.verify_transaction(note.data.signedTransactionInfo)

    return _timed(run)


def apple(
    path: Path, payloads: list[str], chain: Chain, cache_size: int = 64
) -> tuple[float, float, float]:
    """(first pass s, duplicate pass s, verification s in the first pass)."""
    platform = _apple_platform(chain, cache_size)
    verify = Timer()
    platform.verify_notification = verify.wrap(platform.verify_notification)  # type: ignore[method-assign]
    platform.verify_transaction = verify.wrap(platform.verify_transaction)  # type: ignore[method-assign]
    flow = _flow(path, platform)
    notes = AppStoreNotifications(flow, platform)
    first = _timed(lambda: [notes.ingest(p) for p in payloads])
    spent = verify.total
    again = _timed(lambda: [notes.ingest(p) for p in payloads])
    flow.close()
    return first, again, spent


def google(
    path: Path, envelopes: list[dict[str, Any]], tokens: list[str], play: FakePlay
) -> tuple[float, float, float, float]:
    """(first pass s, duplicate pass s, decode+check s, purchase lookup s) in the first pass."""
    service = androidpublisher(http=httplib2.Http(timeout=10), api_endpoint=play.url)
    platform = GooglePlayPlatform(PlayClient(service, PACKAGE))
    lookup, decode = Timer(), Timer()
    client = platform.client
    client.product_purchase = lookup.wrap(client.product_purchase)  # type: ignore[method-assign]
    flow = _flow(path, platform)
    auth = PubSubPushAuth(audience=AUDIENCE, service_account_email=PUSHER, certs_url=play.certs_url)
    auth.verify = decode.wrap(auth.verify)  # type: ignore[method-assign]
    notes = GooglePlayNotifications(flow, platform, push_auth=auth)
    pushes = list(zip(envelopes, tokens, strict=True))
    with _patched(play_ingest, "decode", decode.wrap(play_ingest.decode)):
        first = _timed(lambda: [notes.ingest_push(e, authorization=t) for e, t in pushes])
        spent = decode.total, lookup.total
        again = _timed(lambda: [notes.ingest_push(e, authorization=t) for e, t in pushes])
    flow.close()
    return first, again, *spent


def raw(path: Path, n: int) -> float:
    """The rows one recorded purchase writes, with sqlite3, no verification."""
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    x = conn.execute
    insert_order = (
        f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES "
        f"({', '.join('?' * len(ORDER_COLUMNS))})"
    )
    audit = (
        "INSERT INTO audit_events (aggregate, aggregate_id, event, from_state, to_state,"
        " actor_id, role, at, data) VALUES ('order', ?, ?, ?, ?, 'system', 'system', ?, ?)"
    )
    t = ts(START)
    start = time.perf_counter()
    for i in range(n):
        oid, txn, user = f"ord_{i:020d}", f"txn_{i:010d}", f"u{i % 1000}"
        x("BEGIN IMMEDIATE")
        x(
            "SELECT id FROM orders WHERE platform = 'app_store' AND platform_transaction_id = ?",
            (txn,),
        )
        row = (oid, user, "gems", "Gems", "consumable", None, 199, "USD", "app_store")
        x(insert_order, (*row, None, None, "pending_payment", 1, t, t, None, 0))
        x(audit, (oid, "record", None, "pending_payment", t, json.dumps({"transaction_id": txn})))
        x(
            "UPDATE orders SET status = 'paid', version = 2, updated_at = ?, paid_at = ?,"
            " platform_transaction_id = ? WHERE id = ? AND version = 1",
            (t, t, txn, oid),
        )
        x(audit, (oid, "pay", "pending_payment", "paid", t, json.dumps({"transaction_id": txn})))
        x(
            "UPDATE deadlines SET state = 'done' WHERE subject_id = ? AND state IN"
            " ('pending', 'reminded') AND kind IN ('order_payment')",
            (oid,),
        )
        cur = x(
            "INSERT INTO outbox (topic, recipient, payload, created_at, claimed_until)"
            " VALUES ('order.paid', ?, ?, ?, ?)",
            (user, json.dumps({"order_id": oid, "transaction_id": txn}), t, t),
        )
        x(
            "INSERT INTO idempotency (key, command, fingerprint, result, created_at)"
            " VALUES (?, 'order.record', ?, ?, ?)",
            (f"k{i}", "f" * 64, json.dumps({"kind": "order", "row": list(row)}), t),
        )
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
            (t, cur.lastrowid),
        )
        x("COMMIT")
        x("BEGIN IMMEDIATE")
        x(
            "INSERT OR IGNORE INTO processed_events (source, event_id, created_at) VALUES (?, ?, ?)",
            ("app_store", f"n{i}", t),
        )
        x("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _report(
    name: str, n: int, first: list[float], again: list[float], outside: float, raw_s: float
) -> None:
    """Print rates; ``outside`` is the share of the first pass spent verifying / looking up."""
    f, a = statistics.median(first), statistics.median(again)
    rest = f * (1 - outside)
    print(f"{name}: {n} notifications, median of {ROUNDS} rounds")
    print(f"  first delivery : {n / f:7.0f} /s  {f / n * 1e6:7.0f} us each")
    print(f"  duplicate      : {n / a:7.0f} /s  {a / n * 1e6:7.0f} us each")
    print(f"  the rest (mapping + core writes): {rest / n * 1e6:5.0f} us each,", end=" ")
    print(f"{rest / raw_s:4.1f}x the raw sqlite3 writes")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    webhooks.log.disabled = True
    chain = Chain.generate()
    signer = Apple(chain)
    payloads = []
    for i in range(n):
        txn = signer.transaction("gems", START, account=f"u{i % 1000}")
        payloads.append(signer.notification("ONE_TIME_CHARGE", txn, START))
    envelopes = [push(one_time(f"tok-{i}", "gems", 0), f"m-{i}") for i in range(n)]
    a_first, a_again, a_verify, g_first, g_again, g_decode, g_lookup, raws = ([] for _ in range(8))
    a_alone, a_alone_uncached, a_uncached, a_stock = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, FakePlay() as play:
        tokens = [play.sign() for _ in range(n)]  # Pub/Sub signs every push
        for i in range(n):
            play.purchases[f"tok-{i}"] = product_purchase(f"GPA.{i:04d}-0000-0000-00000", f"u{i}")
        for r in range(ROUNDS):
            raws.append(raw(Path(tmp) / f"raw{r}.db", n))
            first, again, spent = apple(Path(tmp) / f"apple{r}.db", payloads, chain)
            a_first.append(first), a_again.append(again), a_verify.append(spent / first)
            a_alone.append(verification_alone(payloads, chain, 64))
            a_alone_uncached.append(verification_alone(payloads, chain, 0))
            a_stock.append(verification_alone(payloads, chain, None))
            a_uncached.append(apple(Path(tmp) / f"apple_nc{r}.db", payloads, chain, 0)[0])
            first, again, decoded, looked = google(
                Path(tmp) / f"play{r}.db", envelopes, tokens, play
            )
            g_first.append(first), g_again.append(again)
            g_decode.append(decoded / first), g_lookup.append(looked / first)
    raw_s = statistics.median(raws)
    print(f"raw sqlite3, the same writes per notification: {n / raw_s:7.0f} /s")
    verify = statistics.median(a_verify)
    _report("App Store", n, a_first, a_again, verify, raw_s)
    print(f"  verification (2 JWS, strict chain checks): {verify:5.0%} of the first pass")
    ingest, alone = n / statistics.median(a_first), n / statistics.median(a_alone)
    uncached, alone_nc = n / statistics.median(a_uncached), n / statistics.median(a_alone_uncached)
    print(f"  ingest {ingest:7.0f} /s beside verification alone {alone:7.0f} /s:", end=" ")
    print(f"ingest runs at {ingest / alone:4.0%} of verification's rate")
    print(
        f"  chain cache off: ingest {uncached:7.0f} /s, verification alone {alone_nc:7.0f} /s;",
        end=" ",
    )
    print(f"the cache makes ingest {ingest / uncached:4.1f}x faster")
    stock = n / statistics.median(a_stock)
    print(
        f"  the library's SignedDataVerifier as shipped: {stock:7.0f} /s verification alone;",
        end=" ",
    )
    print(f"this adapter's verification is {alone / stock:4.1f}x faster")
    decode, lookup = statistics.median(g_decode), statistics.median(g_lookup)
    _report("Google Play", n, g_first, g_again, decode + lookup, raw_s)
    print(f"  OIDC check + decode + package check: {decode:5.1%} of the first pass")
    print(f"  purchase lookup (androidpublisher over local HTTP): {lookup:5.0%}")


if __name__ == "__main__":
    main()
