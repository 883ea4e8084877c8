"""The HTTP service for the mobile app and staff tools (``pip install 'iap-flow[http]'``).

>>> from iap_flow import open_flow
>>> from iap_flow.http import create_app
>>> app = create_app(open_flow("sqlite://"))
>>> callable(app)
True
"""

from iap_flow.http.app import HttpService, create_app
from iap_flow.http.auth import ApiKeys, Authenticator, Chain, JwtBearer
from iap_flow.http.problems import Forbidden, Unauthenticated

__all__ = [
    "ApiKeys",
    "Authenticator",
    "Chain",
    "Forbidden",
    "HttpService",
    "JwtBearer",
    "Unauthenticated",
    "create_app",
]
