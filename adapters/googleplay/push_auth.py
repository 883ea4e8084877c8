"""Pub/Sub push authentication: the OIDC token Pub/Sub signs for every push.

Configure the push subscription with authentication (``--push-auth-service-account=<email>``,
optionally ``--push-auth-token-audience=<audience>``); Pub/Sub then sends
``Authorization: Bearer <JWT>`` signed by Google. :class:`PubSubPushAuth` checks, with
google-auth's ``id_token.verify_token``:

- the signature, against Google's published certificates (fetched once and cached for the
  time Google's ``Cache-Control`` allows, refetched when a new key id appears);
- ``exp`` / ``iat``; ``aud`` equal to the audience you configured (by default Pub/Sub uses
  the push endpoint URL);
- ``iss`` is Google (``accounts.google.com`` or ``https://accounts.google.com``);
- ``email`` is the service account you configured and ``email_verified`` is true: ``aud``
  alone would accept a token any Google project can mint for your URL.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
from google.oauth2 import id_token

from iap_flow.domain.errors import InvalidInput, PlatformUnavailable

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_MAX_AGE = re.compile(r"max-age=(\d+)")


class Unauthenticated(Exception):
    """The push's token is missing or does not verify (the message says why)."""


class _CachingRequest:
    """A google-auth transport request that keeps successful GETs of the certificate URL
    for the ``Cache-Control: max-age`` Google sends (at most ``max_seconds``)."""

    def __init__(
        self,
        inner: Callable[..., Any],
        *,
        max_seconds: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._max = max_seconds
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self.fetches = 0

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
        if hit is not None and hit[0] > self._now():
            return hit[1]
        response = self._inner(url, method=method, timeout=kwargs.pop("timeout", 10), **kwargs)
        self.fetches += 1
        if response.status == 200:
            found = _MAX_AGE.search(str(response.headers.get("cache-control", "")))
            seconds = min(float(found.group(1)) if found else 300.0, self._max)
            with self._lock:
                self._cache[url] = (self._now() + seconds, response)
        return response

    def forget(self, url: str) -> None:
        with self._lock:
            self._cache.pop(url, None)


class PubSubPushAuth:
    """Verifies Pub/Sub push OIDC tokens for one push subscription.

    ``audience`` is the audience set on the subscription (the push endpoint URL unless you
    set another); ``service_account_email`` the service account Pub/Sub signs as.
    ``certs_url`` is Google's certificate endpoint (change it only for a test double).
    """

    def __init__(
        self,
        *,
        audience: str,
        service_account_email: str,
        certs_url: str = GOOGLE_CERTS_URL,
        request: google.auth.transport.Request | None = None,
        cache_seconds: float = 6 * 3600.0,
        clock_skew_seconds: int = 10,
    ) -> None:
        if not isinstance(audience, str) or not audience:
            raise InvalidInput("Pub/Sub push audience is needed", field="audience")
        if not isinstance(service_account_email, str) or "@" not in service_account_email:
            raise InvalidInput(
                "the Pub/Sub push service account's email is needed",
                field="service_account_email",
            )
        self.audience = audience
        self.email = service_account_email
        self.certs_url = certs_url
        self._skew = clock_skew_seconds
        inner = request or google.auth.transport.requests.Request()
        self._request = _CachingRequest(inner, max_seconds=cache_seconds)

    @property
    def certificate_fetches(self) -> int:
        """How often the certificates were fetched (once per cache period and new key)."""
        return self._request.fetches

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The token's claims, if ``authorization`` (the request's ``Authorization`` header)
        carries a valid token from the configured service account for the configured
        audience. Raises :class:`Unauthenticated`, or PlatformUnavailable when Google's
        certificates cannot be fetched (retry later)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("no Bearer token in Authorization")
        token = authorization[len("Bearer ") :].strip()
        try:
            claims = self._verify(token)
        except Unauthenticated as exc:
            if "not found" not in str(exc).lower():
                raise
            self._request.forget(self.certs_url)  # a key newer than the cached set
            claims = self._verify(token)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated(f"token issued by {claims.get('iss')!r}, not Google")
        if claims.get("email") != self.email:
            raise Unauthenticated(f"token of {claims.get('email')!r}, not {self.email}")
        if claims.get("email_verified") is not True:
            raise Unauthenticated("token's email is not verified")
        return claims

    def _verify(self, token: str) -> Mapping[str, Any]:
        try:
            return id_token.verify_token(
                token,
                self._request,  # type: ignore[arg-type]
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=self._skew,
            )
        except google.auth.exceptions.TransportError as exc:
            raise PlatformUnavailable(
                f"Google's certificates could not be fetched: {exc}", platform="google_play"
            ) from exc
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthenticated(str(exc)) from exc
