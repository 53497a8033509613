"""Alarms that reach someone: the environment's topic and the actions on every alarm."""
from __future__ import annotations

import pytest

from config import ConfigError, load_config
from tests.helpers import resources_of_type, weak_reference


def _drives_scaling(template: dict, properties: dict) -> bool:
    policies = set(resources_of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy"))
    actions = properties.get("AlarmActions") or []
    return bool(actions) and all(isinstance(a, dict) and a.get("Ref") in policies for a in actions)


def all_alarms(assembly) -> dict[str, dict]:
    """Every alarm that is meant for people: all but the step-scaling triggers."""
    return {
        f"{stack.stack_name}/{logical_id}": resource["Properties"]
        for stack in assembly.stacks
        for logical_id, resource in resources_of_type(stack.template, "AWS::CloudWatch::Alarm").items()
        if not _drives_scaling(stack.template, resource["Properties"])
    }


def test_scaling_triggers_scale_and_page_nobody_while_every_other_dev_alarm_pages(platform_synth):
    # dev hosts Stable Diffusion on inference components: a NoCapacityInvocationFailures alarm scales it
    # out of zero on every cold start; sending that to the on-call topic would be noise.
    _, assembly = platform_synth("dev")
    triggers = [
        resource["Properties"]
        for stack in assembly.stacks
        for resource in resources_of_type(stack.template, "AWS::CloudWatch::Alarm").values()
        if _drives_scaling(stack.template, resource["Properties"])
    ]
    assert triggers and all(not t.get("OKActions") for t in triggers)
    assert all(len(p["AlarmActions"]) == 1 and len(p["OKActions"]) == 1 for p in all_alarms(assembly).values())


def test_every_prod_alarm_notifies_the_environment_topic_on_alarm_and_on_ok(platform_synth):
    _, assembly = platform_synth("prod")
    alarms = all_alarms(assembly)
    stacks = {name.split("/")[0] for name in alarms}
    # Endpoints, training and compilation: every stack that has alarms.
    assert {"MlAccel-prod-StableDiffusion", "MlAccel-prod-MultiModel", "MlAccel-prod-Llm"} <= stacks
    # A weak reference: configuring a topic later drops the storage stack's topic without an export in use.
    topic = weak_reference(assembly, "MlAccel-prod-Storage", {"Ref": "AlertsTopicCF7C81C9"})
    for name, props in alarms.items():
        assert props["AlarmActions"] == [topic], name
        assert props["OKActions"] == [topic], name
        assert props.get("ActionsEnabled", True) is True, name


def test_the_topic_is_encrypted_with_the_platform_key_which_cloudwatch_may_use(platform_synth):
    _, assembly = platform_synth("prod")
    storage = assembly.get_stack_by_name("MlAccel-prod-Storage").template
    (topic,) = resources_of_type(storage, "AWS::SNS::Topic").values()
    (key_id, key), = resources_of_type(storage, "AWS::KMS::Key").items()  # the platform key, no second key
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "aws:SourceAccount" in cloudwatch[0]["Condition"]["StringEquals"]
    (policy,) = resources_of_type(storage, "AWS::SNS::TopicPolicy").values()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_without_a_platform_key_the_topic_gets_its_own_key(platform_synth):
    _, assembly = platform_synth("dev")
    storage = assembly.get_stack_by_name("MlAccel-dev-Storage").template
    (key_id, _), = resources_of_type(storage, "AWS::KMS::Key").items()
    (topic,) = resources_of_type(storage, "AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert all(p["AlarmActions"] for p in all_alarms(assembly).values())


def test_configured_emails_are_subscribed(platform_synth):
    _, assembly = platform_synth("dev", alerts__emails='["oncall@example.com", "ml@example.com"]')
    storage = assembly.get_stack_by_name("MlAccel-dev-Storage").template
    subscriptions = resources_of_type(storage, "AWS::SNS::Subscription").values()
    assert sorted((s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subscriptions) == [
        ("email", "ml@example.com"), ("email", "oncall@example.com")]


def test_an_existing_topic_is_used_as_is_and_checked_against_the_deploy_region(platform_synth):
    arn = "arn:aws:sns:eu-west-1:123456789012:oncall"
    _, assembly = platform_synth("dev", alerts__topic_arn=arn)
    storage = assembly.get_stack_by_name("MlAccel-dev-Storage").template
    assert not resources_of_type(storage, "AWS::SNS::Topic")
    assert {tuple(p["AlarmActions"]) for p in all_alarms(assembly).values()} == {(arn,)}
    # Environment-agnostic: the region is known only at deploy, where this rule fails first with its message.
    rule = storage["Rules"]["AlertTopicInThisRegion"]["Assertions"][0]
    assert rule["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}
    assert "alerts.topic_arn" in rule["AssertDescription"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"region": "us-east-1", "account": "123456789012", "alerts.topic_arn": "arn:aws:sns:eu-west-1:123456789012:x"},
         "alerts.topic_arn: got 'arn:aws:sns:eu-west-1:123456789012:x' (region eu-west-1), allowed: a topic in the "
         "environment's region us-east-1"),
        ({"alerts.topic_arn": "arn:aws:sns:eu-west-1:123456789012:x", "alerts.emails": '["a@example.com"]'},
         "alerts.emails: got email addresses and topic_arn; allowed: one of them"),
        ({"alerts.emails": '["not-an-address"]'}, "alerts.emails[0]: got 'not-an-address', allowed: an email address"),
        ({"alerts.topic_arn": "arn:aws:sqs:eu-west-1:123456789012:x"}, "alerts.topic_arn: got 'arn:aws:sqs"),
    ],
)
def test_bad_alert_settings_are_configuration_errors(overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_config("dev", overrides=overrides)
    assert expected in str(err.value)
    assert "(from -c set:" in str(err.value)


def test_a_raw_alarm_keeps_its_own_actions_and_gains_the_topic(tmp_path):
    import aws_cdk as cdk
    from aws_cdk import aws_cloudwatch as cloudwatch

    from ml_constructs.alerts import AlarmActions
    from tests.helpers import new_app

    app = new_app(tmp_path)
    stack = cdk.Stack(app, "Raw")
    props = dict(comparison_operator="GreaterThanThreshold", evaluation_periods=1, threshold=1,
                 metric_name="Errors", namespace="Custom", period=60, statistic="Sum")
    cloudwatch.CfnAlarm(stack, "Own", alarm_actions=["arn:aws:sns:us-east-1:123456789012:mine"], **props)
    cloudwatch.CfnAlarm(stack, "Bare", **props)
    cdk.Aspects.of(app).add(AlarmActions(lambda _: "arn:aws:sns:us-east-1:123456789012:platform"))
    alarms = app.synth().get_stack_by_name("Raw").template["Resources"]
    assert alarms["Own"]["Properties"]["AlarmActions"] == [
        "arn:aws:sns:us-east-1:123456789012:mine", "arn:aws:sns:us-east-1:123456789012:platform"]
    assert alarms["Bare"]["Properties"]["OKActions"] == ["arn:aws:sns:us-east-1:123456789012:platform"]


ACCOUNT, REGION = "123456789012", "us-east-1"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:MlAccel-prod-Llm-Errors"


def _alarm_publishes(storage: dict, *, account: str = ACCOUNT, alarm_arn: str = ALARM_ARN, tls: bool = True,
                     drop_allow: bool = False) -> tuple[str, str]:
    """(topic policy decision for sns:Publish, key policy decision for kms:GenerateDataKey and kms:Decrypt)
    when an alarm publishes to the environment's topic, as AWS evaluates the synthesized resource policies."""
    from tests.policy_evaluation import Request, decide, resolve

    (topic_id,) = resources_of_type(storage, "AWS::SNS::Topic")
    (key_id, key), = resources_of_type(storage, "AWS::KMS::Key").items()
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:MlAccel-prod-Storage-AlertsTopic-1A2B3C"
    refs = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com", topic_id: topic_arn,
            f"{key_id}.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    (policy,) = resources_of_type(storage, "AWS::SNS::TopicPolicy").values()
    topic_policy = resolve(policy["Properties"]["PolicyDocument"], refs)
    if drop_allow:
        topic_policy["Statement"] = [s for s in topic_policy["Statement"] if s["Effect"] != "Allow"]
    context = {"aws:SecureTransport": str(tls).lower(), "aws:SourceAccount": account, "aws:SourceArn": alarm_arn}
    publish = Request("cloudwatch.amazonaws.com", "SNS:Publish", topic_arn, context)
    key_policy = resolve(key["Properties"]["KeyPolicy"], refs)
    # Publishing to an encrypted topic takes both KMS calls (SNS docs, "sns-key-management").
    key_decisions = {decide(key_policy, Request("cloudwatch.amazonaws.com", action, refs[f"{key_id}.Arn"], context))
                     for action in ("kms:GenerateDataKey", "kms:Decrypt")}
    return decide(topic_policy, publish), "Allow" if key_decisions == {"Allow"} else "/".join(sorted(key_decisions))


@pytest.mark.parametrize("env", ["prod", "dev"])  # prod: the platform key; dev: the topic's own key
def test_an_alarm_of_this_account_may_publish_to_the_encrypted_topic_over_tls(platform_synth, env):
    _, assembly = platform_synth(env)
    storage = assembly.get_stack_by_name(f"MlAccel-{env}-Storage").template
    assert _alarm_publishes(storage) == ("Allow", "Allow")


def test_the_topic_refuses_other_accounts_alarms_plain_http_and_works_only_because_of_its_allow(platform_synth):
    _, assembly = platform_synth("prod")
    storage = assembly.get_stack_by_name("MlAccel-prod-Storage").template
    other = "210987654321"
    topic, key = _alarm_publishes(storage, account=other, alarm_arn=ALARM_ARN.replace(ACCOUNT, other))
    assert (topic, key) == ("ImplicitDeny", "ImplicitDeny")
    # A SourceAccount that matches with an alarm ARN of another region or a non-alarm source does not.
    assert _alarm_publishes(storage, alarm_arn=ALARM_ARN.replace(REGION, "eu-west-1"))[0] == "ImplicitDeny"
    assert _alarm_publishes(storage, alarm_arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/x")[0] == "ImplicitDeny"
    assert _alarm_publishes(storage, tls=False)[0] == "Deny"  # the explicit TLS Deny wins over the Allow
    # The policy the review found (the TLS Deny alone) blocks every alarm: SNS's default policy is replaced.
    assert _alarm_publishes(storage, drop_allow=True)[0] == "ImplicitDeny"
