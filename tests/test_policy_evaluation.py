"""The test evaluator of resource policies decides like AWS on the cases the alert tests rely on."""
from __future__ import annotations

import pytest

from tests.policy_evaluation import Request, Unsupported, decide, resolve

TOPIC = "arn:aws:sns:us-east-1:123456789012:t"
ALLOW_CW = {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
            "Resource": TOPIC, "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:123456789012:alarm:*"}}}
DENY_HTTP = {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": TOPIC,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _request(**context: str) -> Request:
    return Request("cloudwatch.amazonaws.com", "SNS:Publish", TOPIC, context)


def test_deny_wins_allow_needs_every_condition_and_silence_denies():
    policy = {"Statement": [DENY_HTTP, ALLOW_CW]}
    alarm = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"
    assert decide(policy, _request(**{"aws:SecureTransport": "true", "aws:SourceArn": alarm})) == "Allow"
    assert decide(policy, _request(**{"aws:SecureTransport": "false", "aws:SourceArn": alarm})) == "Deny"
    assert decide(policy, _request(**{"aws:SecureTransport": "true"})) == "ImplicitDeny"  # key missing
    assert decide({"Statement": [DENY_HTTP]}, _request(**{"aws:SecureTransport": "true"})) == "ImplicitDeny"
    other_service = Request("events.amazonaws.com", "sns:Publish", TOPIC, {"aws:SourceArn": alarm})
    assert decide(policy, other_service) == "ImplicitDeny"


def test_what_it_does_not_evaluate_raises_instead_of_guessing():
    with pytest.raises(Unsupported):
        decide({"Statement": [{**ALLOW_CW, "Condition": {"StringNotEquals": {"aws:SourceAccount": "1"}}}]},
               _request(**{"aws:SourceAccount": "1"}))
    with pytest.raises(Unsupported):
        decide({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "*", "Resource": "*"}]},
               _request())
    with pytest.raises(Unsupported):
        resolve({"Fn::Sub": "arn:${AWS::Partition}"}, {})


def test_resolve_joins_refs_and_attributes():
    value = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":x:", {"Fn::GetAtt": ["Key", "Arn"]}]]}
    assert resolve(value, {"AWS::Partition": "aws", "Key.Arn": "k"}) == "arn:aws:x:k"
