"""Google Play adapter (``pip install 'iap-flow[googleplay]'``): androidpublisher v3 through
google-api-python-client, with the discovery document shipped in that package."""

from iap_flow.adapters.accounts import obfuscated_account_id
from iap_flow.adapters.googleplay.client import PlayApiError, PlayClient, androidpublisher
from iap_flow.adapters.googleplay.ingest import GooglePlayNotifications
from iap_flow.adapters.googleplay.platform import REVIEW_WINDOW, GooglePlayPlatform
from iap_flow.adapters.googleplay.push_auth import PubSubPushAuth
from iap_flow.adapters.googleplay.voided import Reconciled
from iap_flow.adapters.webhooks import IngestResult, NotificationRejected

__all__ = [
    "REVIEW_WINDOW",
    "GooglePlayNotifications",
    "GooglePlayPlatform",
    "IngestResult",
    "NotificationRejected",
    "PlayApiError",
    "PlayClient",
    "PubSubPushAuth",
    "Reconciled",
    "androidpublisher",
    "obfuscated_account_id",
]
