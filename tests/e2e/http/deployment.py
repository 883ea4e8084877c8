"""``iap-flow serve`` as deployed with every store and the Slack bot: one configuration
(the sandbox, the App Store against a local chain shaped like Apple's and the fake App Store
Server API, Google Play against the fake androidpublisher and Google's push certificates,
Slack against the fake Web API), one OS process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "slack"))

from apple_fakes import BUNDLE_ID, Apple, Chain, FakeAppStoreAPI, api_signing_key
from http_server import Api, serving
from play_fakes import AUDIENCE, PACKAGE, PUSHER, SUBSCRIPTION, FakePlay
from slack_bot import SECRET
from slack_fakes import FakeSlack

PUSH_TOKEN = "push-s3cret"


class Deployment:
    def __init__(self, api: Api, apple: Apple, play: FakePlay, slack: FakeSlack) -> None:
        self.api, self.apple, self.play, self.slack = api, apple, play, slack


@contextmanager
def deployment(tmp: Path) -> Iterator[Deployment]:
    """The server and the fakes around it, with the products ``gems`` (a consumable, 199)
    and ``badge`` (a non-consumable, 299) on sale."""
    chain = Chain.generate()
    (tmp / "root.cer").write_bytes(chain.root_der)
    key = api_signing_key()
    (tmp / "apple-key.p8").write_bytes(key)
    slack = FakeSlack().start()
    with FakePlay() as play, FakeAppStoreAPI(chain, key) as apple_api:
        config = tmp / "iap-flow.toml"
        config.write_text(
            f"""
[platforms.sandbox]

[platforms.app_store]
bundle_id = "{BUNDLE_ID}"
environment = "sandbox"
root_certificates = ["{tmp / "root.cer"}"]
key_id = "KEY123"
issuer_id = "issuer"
private_key_file = "{tmp / "apple-key.p8"}"
api_url = "{apple_api.url}"
enable_online_checks = false

[platforms.google_play]
package_name = "{PACKAGE}"
api_endpoint = "{play.url}"
subscription = "{SUBSCRIPTION}"
push_service_account = "{PUSHER}"
push_audience = "{AUDIENCE}"
push_certs_url = "{play.certs_url}"

[slack]
review_channel = "C0REVIEW"
api_url = "{slack.url}"
deliver_every = 0.1
sweep_every = 0

[slack.roles]
support_agents = ["UAGENT1"]
support_leads = ["ULEAD"]

[notifications]
buyer = "jsonl:{tmp / "buyers.jsonl"}"
staff = "slack"
"""
        )
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "IAP_FLOW_GOOGLE_PLAY_PUSH_TOKEN": PUSH_TOKEN,
        }
        with serving(tmp, config=config, env=env) as api:
            api.product("gems", 199)
            api.product("badge", 299, kind="non_consumable")
            try:
                yield Deployment(api, Apple(chain), play, slack)
            finally:
                slack.stop()
