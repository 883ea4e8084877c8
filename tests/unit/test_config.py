"""The deployment's configuration: the example file loads, the environment wins for secrets,
every refusal names the key and the file, and each process delivers only the audiences it
has a destination for."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from iap_flow import SYSTEM, Actor, Money, ReviewAnswerPolicy
from iap_flow.adapters.notifiers import MemoryNotifier
from iap_flow.bots.slack.config import SlackConfig
from iap_flow.config import ConfigError, load_config, open_flow_from_config
from iap_flow.domain.models import Audience, Platform
from iap_flow.domain.roles import Role

EXAMPLE = Path(__file__).parents[2] / "examples" / "iap-flow.example.toml"
PM = Actor("pm", Role.PRODUCT_MANAGER)


def _secrets(folder: Path) -> None:
    """Key files like the real ones: an EC P-256 .p8, a root certificate, a service account."""
    folder.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "SubscriptionKey_ABC123DEFG.p8").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1))
        .not_valid_after(datetime(2036, 1, 1))
        .sign(key, hashes.SHA256())
    )
    (folder / "AppleRootCA-G3.cer").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = {
        "type": "service_account",
        "project_id": "example",
        "private_key_id": "1",
        "private_key": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": "iap-flow@example.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    (folder / "play-service-account.json").write_text(json.dumps(account))


def test_the_example_file_loads_completely(tmp_path: Path) -> None:
    copy = tmp_path / "iap-flow.toml"
    copy.write_text(EXAMPLE.read_text())
    _secrets(tmp_path / "secrets")
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}
    config = load_config(copy, env=env)

    assert config.store_url.startswith("postgresql://")
    assert config.destinations() == {
        Audience.BUYER: "jsonl:/var/lib/iap-flow/buyers.jsonl",
        Audience.STAFF: "slack",
    }
    policy = config.policy()
    assert policy.refund_review == timedelta(hours=24)
    assert policy.agent_limit("GBP") == 4000
    assert policy.review_answer == ReviewAnswerPolicy(
        lead_time=timedelta(hours=1), delivered="decline", undelivered="approve"
    )
    assert policy.acknowledge_escalate_after == timedelta(days=2)
    platforms = [p.platform for p in config.platforms()]
    assert platforms == [Platform.GOOGLE_PLAY, Platform.SANDBOX, Platform.APP_STORE]
    slack = SlackConfig.from_config(config)
    assert (slack.bot_token, slack.signing_secret, slack.review_channel) == (
        "xoxb-1",
        "s3cret",
        "C0123ABCD",
    )
    assert slack.roles.users == {"U0ALICE01": Role.SUPPORT_AGENT}
    assert ("S0LEADS01", Role.SUPPORT_LEAD) in slack.roles.groups


def test_a_missing_key_file_is_named_with_its_key_and_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "iap-flow.toml"
    copy.write_text(EXAMPLE.read_text())
    config = load_config(copy, env={})

    with pytest.raises(ConfigError) as caught:
        config.platforms()

    assert caught.value.key == "platforms.google_play.service_account_file"
    assert caught.value.source == str(copy)
    assert str(tmp_path / "secrets" / "play-service-account.json") in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("[store]\nurl = 5\n", "store.url", "non-empty string"),
        ('[notifications]\nstaf = "slack"\n', "notifications.staf", "unknown key"),
        ('[policy]\nrefund_review = "1 day"\n', "policy.refund_review", "duration like"),
        ("[policy]\nremind_at_fraction = 1.5\n", "policy.remind_at_fraction", "between 0 and 1"),
        ("[policy.agent_refund_limits]\nusd = 10\n", "policy.agent_refund_limits.usd", "ISO 4217"),
        ('[platforms]\ndefault = "app_store"\n', "platforms.default", "configured platforms"),
        (
            '[platforms.google_play]\npackage_name = "x"\n',
            "platforms.google_play.service_account_file",
            "is required",
        ),
        (
            '[slack]\nreview_channel = "#refunds"\nbot_token = "x"\n',
            "slack.review_channel",
            "channel's id",
        ),
        (
            '[slack]\nreview_channel = "C01"\nbot_token = "x"\n[slack.roles]\nsupport_agents = ["alice"]\n',
            "slack.roles.support_agents",
            "neither a Slack user id",
        ),
        ("[stroe]\nurl = 1\n", "stroe", "unknown section"),
        (
            '[policy.review_answer]\ndelivered = "refund"\n',
            "policy.review_answer.delivered",
            "approve or decline",
        ),
        ("[policy.review_answer]\nlead_time = 2\n", "policy.review_answer.lead_time", ""),
        ("[policy.review_answer]\nwhen = 1\n", "policy.review_answer.when", ""),
        (
            '[platforms.google_play]\npackage_name = "p"\napi_endpoint = "http://127.0.0.1:9/"\n'
            "delivered_consumption = 150000\n",
            "platforms.google_play.delivered_consumption",
            "0-100000",
        ),
        (
            '[policy]\nacknowledge_escalate_after = "soon"\n',
            "policy.acknowledge_escalate_after",
            "",
        ),
        ("[store\n", "(syntax)", "not valid TOML"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_the_file(
    tmp_path: Path, text: str, key: str, says: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        config = load_config(path, env={})
        config.store_url  # noqa: B018 - reading each part is what validates it
        config.destinations()
        config.policy()
        config.platforms()
        SlackConfig.from_config(config)

    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert says in str(caught.value)


def test_the_environment_wins_and_an_error_in_it_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "iap.toml"
    path.write_text('[store]\nurl = "sqlite:///nowhere/x.db"\n[policy]\nrefund_review = "24h"\n')
    env = {"IAP_FLOW_STORE_URL": "sqlite://", "IAP_FLOW__POLICY__REFUND_REVIEW": "2h"}
    config = load_config(path, env=env)
    assert config.store_url == "sqlite://"
    assert config.policy().refund_review == timedelta(hours=2)

    bad = load_config(path, env={"IAP_FLOW__POLICY__REFUND_REVIEW": "soon"})
    with pytest.raises(ConfigError, match="environment variable IAP_FLOW__POLICY__REFUND_REVIEW"):
        bad.policy()
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml", env={})
    assert load_config(env={"IAP_FLOW_CONFIG": str(path)}).path == path


def test_a_process_delivers_only_the_audiences_it_has_a_destination_for(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    buyers = tmp_path / "buyers.jsonl"
    path = tmp_path / "iap.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n[notifications]\nbuyer = "jsonl:buyers.jsonl"\nstaff = "slack"\n'
    )
    # the cron sweep: no Slack here, so the staff's notifications stay in the outbox
    with open_flow_from_config(path, env={}, deliver_inline=False) as cron:
        cron.catalogue.add(
            PM,
            sku="gems",
            title="Gems",
            description="d",
            price=Money(199, "USD"),
            kind="consumable",
        )
        order = cron.orders.place(Actor.buyer("u1"), "gems")
        cron.orders.pay(Actor.buyer("u1"), order.id, token="tok_approve")
        cron.feedback.submit(Actor.buyer("u1"), rating=1, body="Broken", reason="app_problem")
        assert cron.deliver_notifications(SYSTEM) == 1
    assert [json.loads(line)["topic"] for line in buyers.read_text().splitlines()] == ["order.paid"]
    # the bot's process: it has the "slack" destination, and delivers what waited
    staff = MemoryNotifier()
    with open_flow_from_config(path, env={}, notifiers={"slack": staff}) as bot:
        assert bot.deliver_notifications(SYSTEM) == 1
    assert [n.topic for n in staff.sent] == ["ticket.opened"]
    assert len(buyers.read_text().splitlines()) == 1


def test_service_levels_are_configured_in_the_policy(tmp_path: Path) -> None:
    from datetime import date, time

    from iap_flow import TicketPriority

    path = tmp_path / "iap.toml"
    path.write_text(
        """
[policy]
order_delivery = "2h"
escalation_window = "4h"
escalation_levels = ["support_lead"]
remind_at_fraction = 0.8

[policy.ticket_targets.urgent]
first_response = "30m"

[policy.business_hours]
tz = "Asia/Shanghai"
days = ["mon", "tue", "wed", "thu", "fri", "sat"]
opens = "08:30"
closes = "17:30"
holidays = ["2026-10-01"]
"""
    )
    policy = load_config(path, env={}).policy()
    assert (policy.order_delivery, policy.escalation_window) == (
        timedelta(hours=2),
        timedelta(hours=4),
    )
    assert policy.escalation_levels == ("support_lead",)
    assert policy.remind_at_fraction == 0.8
    assert policy.ticket_targets[TicketPriority.URGENT] == (
        timedelta(minutes=30),
        timedelta(hours=8),  # the default resolution target stays
    )
    cal = policy.ticket_calendar
    assert cal is not None
    assert (cal.tz, cal.days, cal.opens, cal.closes, cal.holidays) == (
        "Asia/Shanghai",
        frozenset(range(6)),
        time(8, 30),
        time(17, 30),
        frozenset({date(2026, 10, 1)}),
    )
    path.write_text("[policy]\n")
    assert load_config(path, env={}).policy().ticket_calendar is None  # every hour counts


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[policy.business_hours]\ntz = "Mars/Base"\n', "policy.business_hours.tz"),
        ('[policy.business_hours]\ndays = ["someday"]\n', "policy.business_hours.days"),
        ('[policy.business_hours]\nopens = "9am"\n', "policy.business_hours.opens"),
        ('[policy.business_hours]\nopens = "18:00"\n', "policy.business_hours.hours"),
        ('[policy.business_hours]\nholidays = ["1 Oct"]\n', "policy.business_hours.holidays"),
        ('[policy.ticket_targets.normal]\nfirst_response = "1h"\n', "policy.ticket_targets.normal"),
        ('[policy]\nescalation_levels = ["ceo"]\n', "policy.escalation_levels"),
    ],
)
def test_a_wrong_service_level_is_refused_with_its_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "iap.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={}).policy()
    assert refused.value.key == key
