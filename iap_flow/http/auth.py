"""Who is calling: a pluggable authenticator turns a request's headers into an :class:`Actor`.

Shipped: :class:`JwtBearer` for buyers (a bearer JWT from the app's identity provider, keys
from a JWKS URL or file, issuer and audience checked) and :class:`ApiKeys` for staff and
system callers (a key maps to an actor with a role). An authenticator returns None when the
request carries no credentials of its kind and raises :class:`Unauthenticated` when it
carries some that do not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jwt

from iap_flow.domain.errors import InvalidInput
from iap_flow.domain.roles import Actor, Role
from iap_flow.http.problems import Unauthenticated

Headers = Mapping[str, str]
"""Request headers with lower-case names."""


class Authenticator(Protocol):
    def __call__(self, headers: Headers) -> Actor | None: ...


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class JwtBearer:
    """Buyers: ``Authorization: Bearer <JWT>``; the buyer's id is the ``sub`` claim.

    Give exactly one key source: ``jwks_url`` (fetched and cached by PyJWT's
    :class:`jwt.PyJWKClient`), ``jwks_file`` (a JWKS JSON document), or ``secret`` (HS256,
    for development and tests). ``exp`` and ``sub`` are required; ``iss`` and ``aud`` must
    match.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks_file: str | Path | None = None,
        secret: str | None = None,
        algorithms: Sequence[str] = ("RS256", "ES256", "EdDSA"),
        leeway: float = 30.0,
        cache_seconds: float = 60.0,
        cache_size: int = 10_000,
    ) -> None:
        if sum(x is not None for x in (jwks_url, jwks_file, secret)) != 1:
            raise InvalidInput("give one of jwks_url, jwks_file or secret", field="jwt")
        self.issuer = issuer
        self.audience = audience
        self._leeway = leeway
        self._client = None if jwks_url is None else jwt.PyJWKClient(jwks_url, cache_keys=True)
        self._keys: dict[str, Any] = {}
        self._secret = secret
        self._cache: dict[str, tuple[float, Actor]] = {}
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._algorithms = ["HS256"] if secret is not None else list(algorithms)
        if jwks_file is not None:
            keyset = jwt.PyJWKSet.from_json(Path(jwks_file).read_text(encoding="utf-8"))
            self._keys = {k.key_id or "": k for k in keyset.keys}

    def _key(self, token: str) -> Any:
        if self._secret is not None:
            return self._secret
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        kid = jwt.get_unverified_header(token).get("kid") or ""
        if kid not in self._keys:
            if len(self._keys) == 1 and not kid:
                return next(iter(self._keys.values()))
            raise Unauthenticated(f"no key {kid!r} in the JWKS file")
        return self._keys[kid]

    def __call__(self, headers: Headers) -> Actor | None:
        token = _bearer(headers)
        if token is None:
            return None
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and now < hit[0]:
            return hit[1]
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=self._algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"bearer token refused: {exc}") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 200:
            raise Unauthenticated("bearer token has no usable sub claim")
        actor = Actor.buyer(sub)
        if self._cache_seconds > 0:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[token] = (min(now + self._cache_seconds, float(claims["exp"])), actor)
        return actor


class ApiKeys:
    """Staff and system callers: ``X-Api-Key: <key>``, each key mapped to an actor.

    Keys are kept as SHA-256 digests and compared in constant time.
    """

    HEADER = "x-api-key"

    def __init__(self, keys: Mapping[str, Actor]) -> None:
        for actor in keys.values():
            if actor.role is Role.BUYER:
                raise InvalidInput("an API key cannot act as a buyer", field="api_keys")
        self._keys = [(hashlib.sha256(k.encode()).digest(), a) for k, a in keys.items()]

    @classmethod
    def from_file(cls, path: str | Path) -> ApiKeys:
        """A JSON object ``{"<key>": {"id": "lead_1", "role": "support_lead"}, ...}``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls({k: Actor(v["id"], v["role"]) for k, v in data.items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot read API keys from {path}: {exc}", field="api_keys"
            ) from exc

    def __call__(self, headers: Headers) -> Actor | None:
        key = headers.get(self.HEADER)
        if key is None:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for known, actor in self._keys:
            if hmac.compare_digest(known, digest):
                found = actor
        if found is None:
            raise Unauthenticated("unknown API key")
        return found


class Chain:
    """The first authenticator that finds credentials decides."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self._each = authenticators

    def __call__(self, headers: Headers) -> Actor | None:
        for authenticate in self._each:
            actor = authenticate(headers)
            if actor is not None:
                return actor
        return None
