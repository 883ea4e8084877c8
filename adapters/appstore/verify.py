"""Chain verification for App Store signed data, stricter and faster than the library's default.

app-store-server-library's ``SignedDataVerifier`` checks the ``x5c`` chain with its
``_ChainVerifier``. This module plugs a subclass in (the library's own tests swap the same
object) that:

- validates the chain at the current time, and also at the payload's ``signedDate`` when the
  library asks for that date (online checks off). The library alone validates only at
  ``signedDate``, so a payload signed with an expired leaf and a back-dated ``signedDate``
  would pass;
- caches what a full verification proved, keyed by the exact certificate bytes, bounded (LRU)
  and expiring: the leaf's public key and the window in which all three certificates are
  valid. A hit still checks both dates against that window; the signature of every payload is
  still checked by the verifier with the cached key. Anything that fails is never cached.
"""

from __future__ import annotations

import threading
import time
from base64 import b64decode
from collections import OrderedDict
from collections.abc import Callable, Sequence

from appstoreserverlibrary.signed_data_verifier import (
    _ChainVerifier,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

CACHE_SIZE = 64
"""Chains remembered at once; Apple signs with a handful of leaves at a time."""
CACHE_SECONDS = 15 * 60.0
"""How long a verified chain is trusted without verifying it again (the library's own limit,
which also bounds how stale an OCSP answer can be)."""


class CachingChainVerifier(_ChainVerifier):
    """``_ChainVerifier`` validating at now (and at ``signedDate``), with a bounded,
    expiring cache of verified chains keyed by their exact certificate bytes."""

    def __init__(
        self,
        root_certificates: Sequence[bytes],
        *,
        strict: bool = True,
        cache_size: int = CACHE_SIZE,
        cache_seconds: float = CACHE_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(list(root_certificates), enable_strict_checks=strict)
        self._size = cache_size
        self._ttl = cache_seconds
        self._now = now
        self._lock = threading.Lock()
        # x5c strings -> (leaf public key, valid from, valid until, trusted until)
        self._chains: OrderedDict[tuple[str, ...], tuple[PublicKeyTypes, float, float, float]]
        self._chains = OrderedDict()
        self._roots = [x509.load_der_x509_certificate(der) for der in root_certificates]
        self.hits = 0
        self.misses = 0

    def verify_chain(  # type: ignore[override]  # a key object: PyJWT takes it as the PEM
        self, certificates: list[str], perform_online_checks: bool, effective_date: int
    ) -> PublicKeyTypes:
        now = self._now()
        dates = {int(now)} if perform_online_checks else {int(now), int(effective_date)}
        key = tuple(certificates)
        with self._lock:
            hit = self._chains.get(key)
            if hit is not None and hit[3] > now:
                self._chains.move_to_end(key)
            else:
                hit = None
        if hit is not None:
            public, valid_from, valid_until, _ = hit
            if all(valid_from <= d <= valid_until for d in dates):
                self.hits += 1
                return public
            # Outside the window: verify in full below, which refuses it.
        self.misses += 1
        for when in sorted(dates):
            pem = self._verify_chain_without_caching(
                certificates=certificates,
                perform_online_checks=perform_online_checks,
                effective_date=when,
            )
            perform_online_checks = False  # OCSP once is enough
        public = serialization.load_pem_public_key(pem.encode())
        valid_from, valid_until = self._window(certificates)
        with self._lock:
            self._chains[key] = (public, valid_from, valid_until, now + self._ttl)
            self._chains.move_to_end(key)
            while len(self._chains) > self._size:
                self._chains.popitem(last=False)
        return public

    def cached(self) -> int:
        """How many chains are remembered now."""
        with self._lock:
            return len(self._chains)

    def _window(self, certificates: Sequence[str]) -> tuple[float, float]:
        """When the leaf, the intermediate and the trusted root that issued it are all
        valid, as POSIX seconds (the chain was verified: these parse)."""
        leaf, mid = (x509.load_der_x509_certificate(b64decode(c)) for c in certificates[:2])
        chain = [leaf, mid, *(r for r in self._roots if r.subject == mid.issuer)]
        return (
            max(c.not_valid_before_utc.timestamp() for c in chain),
            min(c.not_valid_after_utc.timestamp() for c in chain),
        )
