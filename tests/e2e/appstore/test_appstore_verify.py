"""The App Store adapter's one-pass JWS reading agrees with app-store-server-library's own
verifier on every payload, genuine or mangled: the same ones accepted, with the same content,
and the same ones refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from apple_fakes import BUNDLE_ID, Apple, Chain
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from iap_flow.adapters.appstore.verify import CachingChainVerifier, FastSignedDataVerifier

CHAIN = Chain.generate()
SIGNED_AT = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)


def _verifiers() -> tuple[SignedDataVerifier, SignedDataVerifier]:
    roots = [CHAIN.root_der]
    stock = SignedDataVerifier(roots, False, Environment.SANDBOX, BUNDLE_ID, 1)
    fast = FastSignedDataVerifier(roots, False, Environment.SANDBOX, BUNDLE_ID, 1)
    fast._chain_verifier = CachingChainVerifier(roots)
    return stock, fast


STOCK, FAST = _verifiers()


def _outcome(verifier: SignedDataVerifier, signed: str) -> Any:
    try:
        return verifier._decode_signed_object(signed)
    except VerificationException as exc:
        return ("refused", exc.status)


def _x5c(chain: Chain = CHAIN) -> list[str]:
    return [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
        for c in (chain.leaf, chain.intermediate, chain.root)
    ]


def _sign(payload: Any, headers: dict[str, Any] | None = None, key: Any = None) -> str:
    head = {"x5c": _x5c(), **(headers or {})}
    raw = json.dumps(payload).encode()
    return jwt.api_jws.encode(raw, key or CHAIN.leaf_key, algorithm="ES256", headers=head)


def _by_hand(header: dict[str, Any], payload: Any) -> str:
    """A JWS signed ES256-style with the leaf key whatever the header says."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    der = CHAIN.leaf_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


payloads = st.fixed_dictionaries(
    {"signedDate": st.just(SIGNED_AT), "bundleId": st.just(BUNDLE_ID)},
    optional={
        "transactionId": st.text(max_size=20),
        "price": st.integers(-(10**12), 10**12),
        "iat": st.one_of(st.integers(0, 2 * int(time.time())), st.text(max_size=3)),
        "nbf": st.integers(0, 2 * int(time.time())),
        "exp": st.integers(0, 2 * int(time.time())),
        "aud": st.one_of(st.just(""), st.text(min_size=1, max_size=5)),
        "sub": st.one_of(st.text(max_size=5), st.integers()),
    },
)


@settings(max_examples=150, deadline=None)
@given(payloads, st.integers(0, 10**6), st.sampled_from(["none", "flip", "pad", "dot", "cut"]))
def test_genuine_and_mangled_payloads_get_the_librarys_verdict(
    payload: dict[str, Any], where: int, mangle: str
) -> None:
    signed = _sign(payload)
    if mangle == "flip":
        i = where % len(signed)
        if signed[i] != ".":
            signed = signed[:i] + ("A" if signed[i] != "A" else "B") + signed[i + 1 :]
    elif mangle == "pad":
        head, body, sig = signed.split(".")
        signed = ".".join([head, body + "=" * (where % 3), sig])
    elif mangle == "dot":
        signed = signed + "." + signed.split(".")[2]
    elif mangle == "cut":
        signed = signed[: where % len(signed)]
    assert _outcome(FAST, signed) == _outcome(STOCK, signed)


@pytest.mark.parametrize(
    "forged",
    [
        _sign({"signedDate": SIGNED_AT}, {"x5c": []}),
        _sign({"signedDate": SIGNED_AT}, {"x5c": None}),
        _by_hand({"alg": "ES256", "x5c": _x5c(), "kid": 5}, {"signedDate": SIGNED_AT}),
        _by_hand({"alg": "ES384", "x5c": _x5c()}, {"signedDate": SIGNED_AT}),
        _sign({"signedDate": SIGNED_AT}, {"x5c": _x5c(Chain.generate("Mallory"))}),
        _sign({"signedDate": SIGNED_AT}, key=Chain.generate("Mallory").leaf_key),
        _sign([1, 2, 3]),
        jwt.encode({"signedDate": SIGNED_AT}, "s" * 32, algorithm="HS256", headers={"x5c": _x5c()}),
        jwt.encode({"signedDate": SIGNED_AT}, None, algorithm="none", headers={"x5c": _x5c()}),
        Apple(CHAIN.without_marker("leaf")).transaction("gems", datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_what_the_library_refuses_is_refused(forged: str) -> None:
    assert _outcome(STOCK, forged)[0] == "refused"
    assert _outcome(FAST, forged) == _outcome(STOCK, forged)


def test_a_genuine_payload_is_accepted_by_both_with_its_content() -> None:
    payload = {"signedDate": SIGNED_AT, "bundleId": BUNDLE_ID, "transactionId": "1", "iat": 1}
    signed = _sign(payload)
    assert _outcome(FAST, signed) == _outcome(STOCK, signed) == payload
