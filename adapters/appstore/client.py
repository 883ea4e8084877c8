"""The App Store Server API client (Apple's library), optionally at another base URL."""

from __future__ import annotations

from appstoreserverlibrary.api_client import AppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment


class _LocalAPIClient(AppStoreServerAPIClient):
    """The library's client with its base URL moved (it hard-codes Apple's hosts)."""

    def __init__(
        self,
        base_url: str,
        signing_key: bytes,
        key_id: str,
        issuer_id: str,
        bundle_id: str,
        environment: Environment,
    ) -> None:
        super().__init__(signing_key, key_id, issuer_id, bundle_id, environment)
        self._local_base = base_url.rstrip("/")

    def _get_full_url(self, path: str) -> str:
        return self._local_base + path


def api_client(
    *,
    signing_key: bytes,
    key_id: str,
    issuer_id: str,
    bundle_id: str,
    environment: Environment,
    base_url: str | None = None,
) -> AppStoreServerAPIClient:
    """The App Store Server API client for your In-App Purchase key (from App Store Connect).

    ``base_url`` points it somewhere other than Apple's host for its environment (a test
    double or a proxy).
    """
    if base_url is None:
        return AppStoreServerAPIClient(signing_key, key_id, issuer_id, bundle_id, environment)
    return _LocalAPIClient(base_url, signing_key, key_id, issuer_id, bundle_id, environment)


__all__ = ["api_client"]
