"""Payment platforms from the ``[platforms.*]`` tables of the configuration.

One builder per table name; each imports its adapter only when that platform is configured,
so a deployment needs only the extras of the platforms it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iap_flow.domain.errors import InvalidInput
from iap_flow.ports import PaymentPlatform

if TYPE_CHECKING:
    from iap_flow.config import Section

APP_STORE_ENVIRONMENTS = {
    "production": "PRODUCTION",
    "sandbox": "SANDBOX",
    "xcode": "XCODE",
    "local_testing": "LOCAL_TESTING",
}
ANDROIDPUBLISHER_SCOPE = "https://www.googleapis.com/auth/androidpublisher"


REVIEW_KEYS = ("sample_content_provided", "delivered_consumption")
"""What a platform's refund-review answer says when your app's hooks say nothing."""


def review_facts(table: Section) -> dict[str, Any]:
    """``sample_content_provided`` (true if buyers could try the content first) and
    ``delivered_consumption`` (milliunits, 0-100000, sent for a delivered purchase)."""
    sample = table.raw("sample_content_provided", False)
    if not isinstance(sample, bool):
        raise table.error("sample_content_provided", f"must be true or false, got {sample!r}")
    facts: dict[str, Any] = {"sample_content_provided": sample}
    if table.has("delivered_consumption"):
        share = table.integer("delivered_consumption", 0)
        if share > 100_000:
            raise table.error("delivered_consumption", f"must be 0-100000 milliunits, got {share}")
        facts["delivered_consumption"] = share
    return facts


def _module(name: str, extra: str, table: Section) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise table.error("(platform)", f"needs pip install 'iap-flow[{extra}]' ({exc})") from exc


def sandbox(table: Section) -> PaymentPlatform:
    """``[platforms.sandbox]``: the deterministic sandbox (``instance`` tags its ids)."""
    table.only("instance")
    module = _module("iap_flow.adapters.sandbox", "", table)
    platform: PaymentPlatform = module.SandboxPlatform(instance=table.text("instance"))
    return platform


def app_store(table: Section) -> PaymentPlatform:
    """``[platforms.app_store]``: verification with Apple's roots, the Server API with the
    In-App Purchase key (key id, issuer id, private key file)."""
    table.only(
        "bundle_id",
        "environment",
        "app_apple_id",
        "root_certificates",
        "key_id",
        "issuer_id",
        "private_key_file",
        "api_url",
        "enable_online_checks",
        *REVIEW_KEYS,
    )
    client = _module("iap_flow.adapters.appstore.client", "appstore", table)
    adapter = _module("iap_flow.adapters.appstore.platform", "appstore", table)
    environment_module = _module("appstoreserverlibrary.models.Environment", "appstore", table)
    env_name = (table.text("environment") or "production").lower()
    if env_name not in APP_STORE_ENVIRONMENTS:
        raise table.error(
            "environment", f"must be one of {', '.join(APP_STORE_ENVIRONMENTS)}, got {env_name!r}"
        )
    environment = getattr(environment_module.Environment, APP_STORE_ENVIRONMENTS[env_name])
    app_apple_id = table.raw("app_apple_id")
    if app_apple_id is not None:
        app_apple_id = table.integer("app_apple_id", 0, minimum=1)
    elif env_name == "production":
        raise table.error(
            "app_apple_id", "is required in production (App Store Connect > App Information)"
        )
    roots = []
    for i, name in enumerate(table.names("root_certificates")):
        path = table.resolve(name)
        if not path.is_file():
            raise table.error(f"root_certificates[{i}]", f"no such file: {path}")
        roots.append(path.read_bytes())
    if not roots:
        raise table.error(
            "root_certificates", "name Apple's root certificate files (AppleRootCA-G3.cer)"
        )
    key_file = table.file("private_key_file")
    assert key_file is not None
    api = client.api_client(
        signing_key=key_file.read_bytes(),
        key_id=table.need("key_id"),
        issuer_id=table.need("issuer_id"),
        bundle_id=table.need("bundle_id"),
        environment=environment,
        base_url=table.text("api_url"),
    )
    online = table.raw("enable_online_checks", True)
    if not isinstance(online, bool):
        raise table.error("enable_online_checks", f"must be true or false, got {online!r}")
    try:
        platform: PaymentPlatform = adapter.AppStorePlatform(
            bundle_id=table.need("bundle_id"),
            root_certificates=roots,
            environment=environment,
            app_apple_id=app_apple_id,
            api=api,
            enable_online_checks=online,
            **review_facts(table),
        )
    except InvalidInput as exc:
        raise table.error("(platform)", str(exc)) from exc
    return platform


def google_play(table: Section) -> PaymentPlatform:
    """``[platforms.google_play]``: androidpublisher v3 for one package, authorised with a
    service account file (or, through ``api_endpoint``, a proxy or test double)."""
    table.only(
        "package_name",
        "service_account_file",
        "api_endpoint",
        "push_token",
        "push_service_account",
        "push_audience",
        "push_certs_url",
        "subscription",
        "revoke",
        *REVIEW_KEYS,
    )
    client = _module("iap_flow.adapters.googleplay.client", "googleplay", table)
    adapter = _module("iap_flow.adapters.googleplay.platform", "googleplay", table)
    endpoint = table.text("api_endpoint")
    account = table.file("service_account_file", required=endpoint is None)
    credentials = None
    http = None
    if account is not None:
        service_account = _module("google.oauth2.service_account", "googleplay", table)
        try:
            credentials = service_account.Credentials.from_service_account_file(
                str(account), scopes=[ANDROIDPUBLISHER_SCOPE]
            )
        except (ValueError, KeyError) as exc:
            raise table.error(
                "service_account_file", f"not a service account key file: {exc}"
            ) from exc
    else:
        httplib2 = _module("httplib2", "googleplay", table)
        http = httplib2.Http(timeout=30)
    revoke = table.raw("revoke", True)
    if not isinstance(revoke, bool):
        raise table.error("revoke", f"must be true or false, got {revoke!r}")
    service = client.androidpublisher(credentials=credentials, http=http, api_endpoint=endpoint)
    play = client.PlayClient(service, table.need("package_name"))
    platform: PaymentPlatform = adapter.GooglePlayPlatform(
        play, revoke=revoke, **review_facts(table)
    )
    return platform


def google_play_push_auth(table: Section) -> Any:
    """The Pub/Sub push authentication of ``[platforms.google_play]``: the OIDC token of
    ``push_service_account`` for ``push_audience`` (the push subscription's
    ``--push-auth-service-account`` / ``--push-auth-token-audience``), checked against
    Google's certificates (``push_certs_url`` only for a test double). Without it the push
    endpoint would refuse every push, so it is required."""
    push_auth = _module("iap_flow.adapters.googleplay.push_auth", "googleplay", table)
    email = table.text("push_service_account")
    if email is None:
        raise table.error(
            "push_service_account",
            "is required for the push endpoint (the push subscription's "
            "--push-auth-service-account)",
        )
    options: dict[str, Any] = {}
    certs_url = table.text("push_certs_url")
    if certs_url is not None:
        options["certs_url"] = certs_url
    try:
        return push_auth.PubSubPushAuth(
            audience=table.need("push_audience"), service_account_email=email, **options
        )
    except InvalidInput as exc:
        raise table.error("push_service_account", str(exc)) from exc


def store_notifications(flow: Any, config: Any, platforms: list[Any]) -> dict[str, Any]:
    """The notification ingest of each configured store, by platform name (``app_store``:
    an ``AppStoreNotifications``, ``google_play``: a ``GooglePlayNotifications`` whose pushes
    are authenticated as :func:`google_play_push_auth` says, with the ``push_token`` and
    ``subscription`` checked). ``iap-flow webhooks`` and ``iap-flow serve`` serve these."""
    found: dict[str, Any] = {}
    table = config.section("platforms")
    for platform in platforms:
        name = str(platform.platform)
        if name == "google_play":
            play = table.table("google_play")
            module = _module("iap_flow.adapters.googleplay", "googleplay", play)
            token = play.text("push_token")
            if token is None:
                raise play.error(
                    "push_token",
                    "is required for the push endpoint (IAP_FLOW_GOOGLE_PLAY_PUSH_TOKEN)",
                )
            found[name] = module.GooglePlayNotifications(
                flow,
                platform,
                push_auth=google_play_push_auth(play),
                push_token=token,
                subscription=play.text("subscription"),
            )
        elif name == "app_store":
            module = _module("iap_flow.adapters.appstore", "appstore", table.table("app_store"))
            found[name] = module.AppStoreNotifications(flow, platform)
    return found
