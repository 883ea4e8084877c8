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

import json
import re
import threading
import time
from base64 import b64decode, urlsafe_b64decode, urlsafe_b64encode
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
    _ChainVerifier,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

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


_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")


class FastSignedDataVerifier(SignedDataVerifier):
    """``SignedDataVerifier`` reading each JWS once instead of three times.

    The library parses every payload with PyJWT three times (unverified payload, unverified
    header, verified decode); PyJWT checks each base64url segment one character at a time in
    Python, which for a notification (a nested JWS and three certificates) costs more than
    everything else together. Here the compact JWS is split and decoded once, with the same
    rules (base64url alphabet, canonical encoding, JSON objects, ``alg`` ES256, ``x5c``
    chain verified by the chain verifier, ECDSA P-256 / SHA-256 signature of exactly 64
    bytes, registered claims as PyJWT checks them); anything else is refused as the library
    refuses it. The unsigned environments go to the library unchanged.
    """

    def _decode_signed_object(self, signed_obj: str) -> dict[str, Any]:
        if self._environment in (Environment.XCODE, Environment.LOCAL_TESTING):
            return super()._decode_signed_object(signed_obj)
        try:
            header, payload, signing_input, signature = _split(signed_obj)
            x5c = header.get("x5c")
            if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
                raise ValueError("x5c claim was empty")
            if header.get("alg") != "ES256":
                raise ValueError("Algorithm was not ES256")
            signed = payload.get("signedDate")
            if signed is None:
                signed = payload.get("receiptCreationDate")
            online = self._enable_online_checks
            effective = int(time.time()) if online or signed is None else int(signed) // 1000
            key = self._chain_verifier.verify_chain(x5c, online, effective)
            _verify_es256(key, signing_input, signature)
            _check_claims(payload, time.time())
            return payload
        except VerificationException:
            raise
        except Exception as exc:
            raise VerificationException(VerificationStatus.VERIFICATION_FAILURE) from exc


def _segment(raw: bytes) -> bytes:
    """One strict base64url segment (PyJWT's rules: optional ``=`` padding, alphabet only,
    canonical encoding)."""
    stripped = raw.rstrip(b"=")
    padding = len(raw) - len(stripped)
    if padding > 2 or (padding and len(raw) % 4) or len(stripped) % 4 == 1:
        raise ValueError("invalid padding")
    if not _SEGMENT.fullmatch(stripped):
        raise ValueError("not base64url")
    decoded = urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    if urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise ValueError("not canonical base64url")
    return decoded


def _split(signed: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    data = signed.encode()
    signing_input, _, crypto = data.rpartition(b".")
    head, dot, body = signing_input.partition(b".")
    if not dot or b"." in body:
        raise ValueError("not a compact JWS")
    header, payload = json.loads(_segment(head)), json.loads(_segment(body))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("header and payload must be JSON objects")
    if "kid" in header and not isinstance(header["kid"], str):
        raise ValueError("kid must be a string")
    return header, payload, signing_input, _segment(crypto)


def _verify_es256(key: object, signing_input: bytes, signature: bytes) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the leaf's key is not P-256")
    if len(signature) != 64:
        raise ValueError("an ES256 signature is 64 bytes")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))


def _check_claims(payload: dict[str, Any], now: float) -> None:
    """The registered claims PyJWT's ``decode`` checks by default, as it checks them, with
    no leeway."""
    times = {name: int(payload[name]) for name in ("iat", "nbf", "exp") if name in payload}
    if times.get("iat", now) > now or times.get("nbf", now) > now:
        raise ValueError("not yet valid")
    if "exp" in times and times["exp"] <= now:
        raise ValueError("expired")
    if payload.get("aud"):
        raise ValueError("no audience was expected")
    for name in ("sub", "jti"):
        if name in payload and not isinstance(payload[name], str):
            raise ValueError(f"{name} must be a string")
