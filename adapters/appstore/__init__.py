"""App Store adapter (``pip install 'iap-flow[appstore]'``): Apple's app-store-server-library.

:class:`AppStorePlatform` plugs the App Store into ``open_flow(platforms=[...])``;
:class:`AppStoreNotifications` feeds App Store Server Notifications V2 into the flow.
"""

from iap_flow.adapters.accounts import app_account_token
from iap_flow.adapters.appstore.client import api_client
from iap_flow.adapters.appstore.ingest import AppStoreNotifications
from iap_flow.adapters.appstore.platform import REVIEW_WINDOW, AppStorePlatform
from iap_flow.adapters.webhooks import IngestResult, NotificationRejected

__all__ = [
    "REVIEW_WINDOW",
    "AppStoreNotifications",
    "AppStorePlatform",
    "IngestResult",
    "NotificationRejected",
    "api_client",
    "app_account_token",
]
