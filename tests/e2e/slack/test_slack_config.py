"""The bot's configuration from the environment, the role mapping, and the app manifest."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from slack_bot import Bot, config_for
from slack_fakes import FakeSlack

from iap_flow import InvalidInput, Role
from iap_flow.bots.slack.config import RoleMap, RoleResolver, SlackConfig, make_client

MANIFEST = Path(__file__).parents[3] / "bots" / "slack" / "manifest.yml"
ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cret",
    "IAP_FLOW_SLACK_CHANNEL": "C0REVIEW",
    "IAP_FLOW_SLACK_SUPPORT_AGENTS": "U01,U02",
    "IAP_FLOW_SLACK_SUPPORT_LEADS": "S0LEADS",
}
SCOPE_OF = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
    "views.open": None,
    "views.publish": None,
    "auth.test": None,
    "respond": None,  # a command's response_url: no scope
}
"""Web API method -> the bot scope it needs (None: no scope)."""


def test_configuration_comes_from_the_environment() -> None:
    config = SlackConfig.from_env({**ENV, "IAP_FLOW_SLACK_API_URL": "https://slack-gov.com/api/"})

    assert config.bot_token == "xoxb-1"
    assert config.signing_secret == "s3cret"
    assert config.app_token is None
    assert config.api_url == "https://slack-gov.com/api/"
    assert make_client(config).base_url == "https://slack-gov.com/api/"
    assert config.roles.users == {"U01": Role.SUPPORT_AGENT, "U02": Role.SUPPORT_AGENT}
    assert config.roles.groups == (("S0LEADS", Role.SUPPORT_LEAD),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN is not set"),
        ({"IAP_FLOW_SLACK_CHANNEL": "#refunds"}, "channel's id"),
        ({"IAP_FLOW_SLACK_SUPPORT_AGENTS": "U01,alice"}, "'alice' is neither a Slack user id"),
        (
            {"IAP_FLOW_SLACK_SUPPORT_AGENTS": "", "IAP_FLOW_SLACK_SUPPORT_LEADS": ""},
            "no Slack user or group is mapped",
        ),
        ({"IAP_FLOW_SLACK_COMMAND": "iap"}, "must start with '/'"),
    ],
)
def test_a_bad_setting_is_refused_with_a_message_that_says_what_to_fix(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        SlackConfig.from_env({**ENV, **change})


def test_the_strongest_role_wins_and_leads_are_mentioned_by_their_group(slack: FakeSlack) -> None:
    slack.groups["S0LEADS"] = ["U02"]
    roles = RoleMap.parse({Role.SUPPORT_AGENT: "U01,U02", Role.SUPPORT_LEAD: "S0LEADS"})
    resolver = RoleResolver(roles, make_client(config_for(slack)))

    assert resolver.actor("U02") is not None
    assert resolver.actor("U02").role is Role.SUPPORT_LEAD  # type: ignore[union-attr]
    assert resolver.actor("U01").role is Role.SUPPORT_AGENT  # type: ignore[union-attr]
    assert resolver.actor("U03") is None
    assert resolver.lead_mention() == "<!subteam^S0LEADS>"
    assert len(slack.to("usergroups.users.list")) == 1  # cached


def test_the_manifest_asks_for_exactly_what_the_bot_uses(bot: Bot) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the manifest")
    manifest = yaml.safe_load(MANIFEST.read_text())
    refund, message = bot.refund()
    ticket, card = bot.ticket()
    bot.driver.click("UAGENT3", "refund_reject", refund.id, message=message)  # via group
    bot.driver.click("UNOBODY", "ticket_resolve", ticket.id, message=card)
    bot.driver.click("UAGENT1", "refund_approve", refund.id, message=message)
    bot.driver.event({"type": "app_home_opened", "user": "UAGENT1", "tab": "home"}, "Ev1")
    bot.driver.command("UAGENT1", "queue")
    for method in ("views.open", "chat.postEphemeral", "chat.update", "views.publish"):
        bot.slack.wait_for(method)

    used = {c.method for c in bot.slack.calls}
    assert used <= set(SCOPE_OF), used - set(SCOPE_OF)
    needed = {SCOPE_OF[m] for m in used} - {None} | {"commands"}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [
        SlackConfig.from_env(ENV).command
    ]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_an_expired_group_list_is_read_again_in_the_background(slack: FakeSlack) -> None:
    now = [0.0]
    roles = RoleMap.parse({Role.SUPPORT_AGENT: "S0AGENTS"})
    slack.groups["S0AGENTS"] = ["U01"]
    resolver = RoleResolver(roles, make_client(config_for(slack)), monotonic=lambda: now[0])
    resolver.warm()
    slack.groups["S0AGENTS"] = ["U02"]  # membership changes in Slack
    now[0] = 301.0  # past the time to live
    release = slack.hold("usergroups.users.list")  # and Slack is slow to answer
    try:
        assert resolver.actor("U01") is not None  # answered from the old list, not waiting
        assert resolver.actor("U02") is None
    finally:
        release.set()
    slack.wait_for("usergroups.users.list", 2)
    for _ in range(200):
        if resolver.actor("U02") is not None:
            break
        threading.Event().wait(0.02)
    assert resolver.actor("U02") is not None and resolver.actor("U01") is None
    assert len(slack.to("usergroups.users.list")) == 2
