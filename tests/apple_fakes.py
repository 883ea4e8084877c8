"""Apple, played locally: a certificate chain shaped like Apple's, notifications signed with
it, and an App Store Server API answered by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BUNDLE_ID = "com.example.gems"
APP_APPLE_ID = 1234567890
INTERMEDIATE_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
LEAF_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2030, 1, 1, tzinfo=UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iap-flow tests"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    marker: x509.ObjectIdentifier | None,
    valid: tuple[datetime, datetime] = (NOT_BEFORE, NOT_AFTER),
    ocsp: str | None = None,
    identifiers: bool = True,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.BasicConstraints(
                ca=ca, path_length=(None if issuer is None else 0) if ca else None
            ),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if identifiers:  # Apple's own test certificates have none: strict checks refuse them
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if ocsp is not None:  # where to ask whether the certificate was revoked
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    if marker is not None:  # Apple's marker extensions carry an ASN.1 NULL
        builder = builder.add_extension(
            x509.UnrecognizedExtension(marker, b"\x05\x00"), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@attrs.frozen
class Chain:
    """root -> intermediate -> leaf, EC P-256, with Apple's marker extensions."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    root_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(
        cls,
        name: str = "Test Apple",
        *,
        leaf_valid: tuple[datetime, datetime] = (NOT_BEFORE, NOT_AFTER),
        ocsp: str | None = None,
        identifiers: bool = True,
    ) -> Chain:
        """A new root and the chain below it. ``leaf_valid`` sets the leaf's validity (an
        expired leaf); ``ocsp`` names an OCSP responder in the intermediate and the leaf;
        ``identifiers=False`` leaves out the key identifiers, as Apple's test certificates
        do."""
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _cert(
            f"{name} Root CA",
            root_key,
            None,
            root_key,
            ca=True,
            marker=None,
            identifiers=identifiers,
        )
        return cls.below(
            root,
            root_key,
            name,
            INTERMEDIATE_MARKER,
            LEAF_MARKER,
            leaf_valid=leaf_valid,
            ocsp=ocsp,
            identifiers=identifiers,
        )

    @classmethod
    def below(
        cls,
        root: x509.Certificate,
        root_key: ec.EllipticCurvePrivateKey,
        name: str,
        mid_marker: x509.ObjectIdentifier | None,
        leaf_marker: x509.ObjectIdentifier | None,
        *,
        leaf_valid: tuple[datetime, datetime] = (NOT_BEFORE, NOT_AFTER),
        ocsp: str | None = None,
        identifiers: bool = True,
    ) -> Chain:
        """A fresh intermediate and leaf under ``root``, with the markers given."""
        mid_key = ec.generate_private_key(ec.SECP256R1())
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        mid = _cert(
            f"{name} WWDR CA",
            mid_key,
            root,
            root_key,
            ca=True,
            marker=mid_marker,
            ocsp=ocsp,
            identifiers=identifiers,
        )
        leaf = _cert(
            f"{name} Store Signer",
            leaf_key,
            mid,
            mid_key,
            ca=False,
            marker=leaf_marker,
            valid=leaf_valid,
            ocsp=ocsp,
            identifiers=identifiers,
        )
        return cls(root, mid, leaf, leaf_key, root_key)

    def without_marker(self, which: str) -> Chain:
        """A chain under the same (trusted) root missing Apple's marker on ``which``
        (``"leaf"`` or ``"intermediate"``): the verifier must refuse it."""
        mid = None if which == "intermediate" else INTERMEDIATE_MARKER
        leaf = None if which == "leaf" else LEAF_MARKER
        return Chain.below(self.root, self.root_key, "Test Apple", mid, leaf)

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    def sign(self, payload: dict[str, Any]) -> str:
        """A JWS the way Apple signs: ES256 with the chain in the ``x5c`` header."""
        x5c = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (self.leaf, self.intermediate, self.root)
        ]
        return jwt.encode(payload, self.leaf_key, algorithm="ES256", headers={"x5c": x5c})


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class Apple:
    """Builds signed notifications and transactions for one app, as Apple would."""

    def __init__(self, chain: Chain, *, environment: str = "Sandbox") -> None:
        self.chain = chain
        self.environment = environment
        self._seq = 1000

    def next_id(self) -> str:
        self._seq += 1
        return f"2000000{self._seq}"

    def transaction(
        self,
        product_id: str,
        at: datetime,
        *,
        transaction_id: str | None = None,
        original: str | None = None,
        account: str | None = None,
        price: int = 1990,
        currency: str = "USD",
        revoked_at: datetime | None = None,
        signed_at: datetime | None = None,
        ownership: str = "PURCHASED",
        expires_at: datetime | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed transaction; with ``expires_at`` an auto-renewable subscription's;
        ``extra`` adds or replaces fields (``revocationType``...)."""
        txn = transaction_id or self.next_id()
        payload: dict[str, Any] = {
            "transactionId": txn,
            "originalTransactionId": original or txn,
            "bundleId": BUNDLE_ID,
            "productId": product_id,
            "purchaseDate": ms(at),
            "originalPurchaseDate": ms(at),
            "quantity": 1,
            "type": "Consumable",
            "inAppOwnershipType": ownership,
            "signedDate": ms(signed_at or at),
            "environment": self.environment,
            "transactionReason": "PURCHASE",
            "storefront": "USA",
            "price": price,
            "currency": currency,
        }
        if account is not None:
            payload["appAccountToken"] = account
        if expires_at is not None:
            payload["type"] = "Auto-Renewable Subscription"
            payload["expiresDate"] = ms(expires_at)
        if revoked_at is not None:
            payload["revocationDate"] = ms(revoked_at)
            payload["revocationReason"] = 0
        payload.update(extra or {})
        return self.chain.sign(payload)

    def renewal_info(
        self,
        original: str,
        product_id: str,
        at: datetime,
        *,
        auto_renew_product: str | None = None,
        auto_renew: bool = True,
        grace_until: datetime | None = None,
    ) -> str:
        """Signed renewal info (``data.signedRenewalInfo``) as Apple sends it."""
        payload: dict[str, Any] = {
            "originalTransactionId": original,
            "productId": product_id,
            "autoRenewProductId": auto_renew_product or product_id,
            "autoRenewStatus": 1 if auto_renew else 0,
            "isInBillingRetryPeriod": grace_until is not None,
            "signedDate": ms(at),
            "environment": self.environment,
        }
        if grace_until is not None:
            payload["gracePeriodExpiresDate"] = ms(grace_until)
        return self.chain.sign(payload)

    def notification(
        self,
        kind: str,
        signed_transaction: str | None,
        at: datetime,
        *,
        subtype: str | None = None,
        extra: dict[str, Any] | None = None,
        notification_uuid: str | None = None,
    ) -> str:
        data: dict[str, Any] = {
            "appAppleId": APP_APPLE_ID,
            "bundleId": BUNDLE_ID,
            "bundleVersion": "1.0",
            "environment": self.environment,
            **(extra or {}),
        }
        if signed_transaction is not None:
            data["signedTransactionInfo"] = signed_transaction
        payload: dict[str, Any] = {
            "notificationType": kind,
            "notificationUUID": notification_uuid or str(uuid.uuid4()),
            "data": data,
            "version": "2.0",
            "signedDate": ms(at),
        }
        if subtype is not None:
            payload["subtype"] = subtype
        return self.chain.sign(payload)


def tamper(signed: str, **changes: Any) -> str:
    """The same JWS with its payload edited and the signature kept: must not verify."""
    head, body, sig = signed.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    raw = json.dumps(payload).encode()
    return ".".join([head, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), sig])


def api_signing_key() -> bytes:
    """An In-App Purchase key like the one App Store Connect gives (PEM, EC P-256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@attrs.define
class Sent:
    """One notification Apple sent at ``at``; ``delivered`` False if it never reached the
    server (a timeout, a 5xx): Get Notification History lists it with ``onlyFailures``."""

    signed_payload: str
    at: datetime
    delivered: bool = True


@attrs.define
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeAppStoreAPI:
    """The App Store Server API on 127.0.0.1: records what it was sent, answers as Apple."""

    def __init__(self, chain: Chain, signing_key_pem: bytes) -> None:
        self.seen: list[Seen] = []
        self.transactions: dict[str, str] = {}  # transaction id -> signed transaction
        # Get Notification History: what Apple sent (or tried to), with when and whether it
        # reached the server; Get Refund History: each customer's refunded transactions
        self.history: list[Sent] = []
        self.history_page = 20
        self.refunds: dict[str, list[str]] = {}  # customer -> signed refunded transactions
        self.customer_of: dict[str, str] = {}  # any transaction id -> its customer
        self.refund_page = 20
        self.fail_next: list[int] = []  # HTTP statuses to answer with before succeeding
        self._public = serialization.load_pem_private_key(signing_key_pem, None).public_key()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any] | None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                if not fake._authorised(self.headers.get("Authorization", "")):
                    return self._reply(401, None)
                if fake.fail_next:
                    status = fake.fail_next.pop(0)
                    return self._reply(status, {"errorCode": 5000000, "errorMessage": "down"})
                if self.command == "PUT" and self.path.startswith(
                    "/inApps/v2/transactions/consumption/"
                ):
                    return self._reply(202, None)
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if self.command == "POST" and url.path == "/inApps/v1/notifications/history":
                    return self._reply(*fake._history(body or {}, query))
                if self.command == "GET" and url.path.startswith("/inApps/v2/refund/lookup/"):
                    return self._reply(*fake._refund_history(url.path.rsplit("/", 1)[1], query))
                if (
                    self.command == "POST"
                    and url.path.startswith("/inApps/v1/transactions/")
                    and url.path.endswith("/finish")
                ):
                    return self._reply(200, None)
                if self.command == "GET" and self.path.startswith("/inApps/v1/transactions/"):
                    txn = self.path.rsplit("/", 1)[1]
                    if txn in fake.transactions:
                        return self._reply(200, {"signedTransactionInfo": fake.transactions[txn]})
                    return self._reply(
                        404, {"errorCode": 4040010, "errorMessage": "Transaction id not found."}
                    )
                return self._reply(404, None)

            do_GET = do_PUT = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(
                header[7:], self._public, algorithms=["ES256"], audience="appstoreconnect-v1"
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("bid") == BUNDLE_ID)

    def _history(
        self, body: dict[str, Any], query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        """As Apple: the notifications sent in [startDate, endDate), oldest first, those that
        failed to reach the server only with ``onlyFailures``, pages of ``history_page``."""
        start, end = body.get("startDate"), body.get("endDate")
        if not isinstance(start, int) or not isinstance(end, int) or start >= end:
            return 400, {"errorCode": 4000015, "errorMessage": "Invalid start or end date."}
        found = [
            h
            for h in self.history
            if start <= ms(h.at) < end and not (body.get("onlyFailures") and h.delivered)
        ]
        offset = int((query.get("paginationToken") or ["0"])[0])
        page = found[offset : offset + self.history_page]
        more = offset + self.history_page < len(found)
        answer: dict[str, Any] = {
            "hasMore": more,
            "notificationHistory": [
                {
                    "signedPayload": h.signed_payload,
                    "sendAttempts": [
                        {
                            "attemptDate": ms(h.at),
                            "sendAttemptResult": "SUCCESS" if h.delivered else "TIMED_OUT",
                        }
                    ],
                }
                for h in page
            ],
        }
        if more:
            answer["paginationToken"] = str(offset + self.history_page)
        return 200, answer

    def _refund_history(
        self, transaction_id: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        """As Apple: the customer's refunded transactions after ``revision``, in pages; every
        answer carries the revision to ask from next time."""
        customer = self.customer_of.get(transaction_id)
        if customer is None:
            return 404, {"errorCode": 4040010, "errorMessage": "Transaction id not found."}
        refunded = self.refunds.get(customer, [])
        offset = int((query.get("revision") or ["0"])[0])
        page = refunded[offset : offset + self.refund_page]
        return 200, {
            "signedTransactions": page,
            "revision": str(offset + len(page)),
            "hasMore": offset + len(page) < len(refunded),
        }

    def history_calls(self) -> list[Seen]:
        return [s for s in self.seen if "/notifications/history" in s.path]

    def refund_history_calls(self) -> list[Seen]:
        return [s for s in self.seen if "/refund/lookup/" in s.path]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def consumption_answers(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "PUT" and "/consumption/" in s.path]

    def __enter__(self) -> FakeAppStoreAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def now_plus(start: datetime, **delta: float) -> datetime:
    return start + timedelta(**delta)
