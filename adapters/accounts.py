"""Account binding: which of your users a store purchase belongs to.

Both stores let the app attach an id of its own user to a purchase, and both echo it back in
every transaction, notification lookup and purchase resource:

- Apple: ``appAccountToken``, a UUID set with StoreKit's
  ``Product.PurchaseOption.appAccountToken(_:)``. Use :func:`app_account_token` of your user
  id (a UUIDv5 in :data:`APP_ACCOUNT_NAMESPACE`), or the user id itself if it is a UUID.
- Google: ``obfuscatedExternalAccountId``, set with
  ``BillingFlowParams.Builder.setObfuscatedAccountId(...)``. Use
  :func:`obfuscated_account_id` of your user id (SHA-256, hex: 64 characters, Google's
  limit), or the user id itself if it is not personal data and at most 64 characters.

The adapters compare the purchase's id with the order's buyer wherever a purchase is tied to
an order and refuse a mismatch with :class:`~iap_flow.domain.errors.PurchaseNotOwned`.
"""

from __future__ import annotations

import hashlib
import uuid

APP_ACCOUNT_NAMESPACE = uuid.UUID("5b0f4a8e-6c1d-5e57-9d3a-1a2f0c9e7b41")
"""The namespace of :func:`app_account_token` (a fixed UUID: never change it once live)."""


def app_account_token(user_id: str, namespace: uuid.UUID = APP_ACCOUNT_NAMESPACE) -> str:
    """The ``appAccountToken`` your app sets for ``user_id``: ``uuid5(namespace, user_id)``,
    lower-case, hyphenated.

    >>> app_account_token("u1")
    '824a7dac-a17d-5625-a5c6-c80b09100c2c'
    """
    return str(uuid.uuid5(namespace, user_id))


def obfuscated_account_id(user_id: str) -> str:
    """The ``obfuscatedExternalAccountId`` your app sets for ``user_id``: the SHA-256 of its
    UTF-8 bytes, 64 lower-case hex digits.

    >>> obfuscated_account_id("u1")[:16]
    'bb82030dbc2bcaba'
    """
    return hashlib.sha256(user_id.encode()).hexdigest()


def apple_token_matches(
    token: str, user_id: str, namespace: uuid.UUID = APP_ACCOUNT_NAMESPACE
) -> bool:
    """``token`` is ``user_id`` itself (compared as UUIDs when both are) or its
    :func:`app_account_token`."""
    if token == user_id:
        return True
    try:
        given = uuid.UUID(token)
    except ValueError:
        return False
    try:
        if given == uuid.UUID(user_id):
            return True
    except ValueError:
        pass
    return given == uuid.uuid5(namespace, user_id)


def google_account_matches(account: str, user_id: str) -> bool:
    """``account`` is ``user_id`` itself or its :func:`obfuscated_account_id`."""
    return account == user_id or account.lower() == obfuscated_account_id(user_id)
