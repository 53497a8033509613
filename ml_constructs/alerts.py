"""Alarms that reach someone: one encrypted SNS topic, and an aspect that makes it
the alarm and OK action of every CloudWatch alarm in an app.

An aspect (rather than each construct taking a topic) covers the alarms of
every workload, including those inside constructs that know nothing of alerts
(training, compilation), and any added later.
"""
from __future__ import annotations

from typing import Callable, Sequence

import aws_cdk as cdk
import jsii
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct

CLOUDWATCH = "cloudwatch.amazonaws.com"


class AlertTopic(Construct):
    """An SNS topic for alarm notifications, encrypted with a customer managed key.

    Props
      key: the key to encrypt with; it must be a key of this stack (its policy
        gets a statement for CloudWatch). Default: a new key with rotation.
      emails: addresses subscribed to the topic (each confirms by mail).
      removal_policy: of a created key. Default: RETAIN.

    Default settings: SSL-only publishing (``enforce_ssl``); CloudWatch may publish
    (``sns:Publish``) and use the key (``kms:Decrypt``, ``kms:GenerateDataKey*``) for
    alarms of this account only. The topic policy needs that Allow: a topic policy
    replaces SNS's default one, so a policy holding only the TLS Deny lets no alarm
    publish. The AWS managed SNS key cannot be used by CloudWatch alarms.

    Creates ``topic`` and ``key`` (given or created).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.Key | None = None,
        emails: Sequence[str] = (),
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = key or kms.Key(
            self, "Key", enable_key_rotation=True, removal_policy=removal_policy,
            description="Encrypts the platform's alarm notification topic",
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True,
                               display_name="ML platform alarms")
        self.topic.add_to_resource_policy(cloudwatch_may_publish(self.topic.topic_arn, cdk.Stack.of(self)))
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


def cloudwatch_may_publish(topic_arn: str, stack: cdk.Stack) -> iam.PolicyStatement:
    """The topic-policy statement that lets the alarms of ``stack``'s account and region publish
    (AWS knowledge center, "cloudwatch-receive-sns-for-alarm-trigger"). Scoped by ``aws:SourceArn``
    alone, the key that article conditions on: the alarm ARN names the account and region already."""
    return iam.PolicyStatement(
        sid="AlarmsOfThisAccountPublish",
        principals=[iam.ServicePrincipal(CLOUDWATCH)],
        actions=["sns:Publish"],
        resources=[topic_arn],
        conditions={
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"},
        },
    )


@jsii.implements(cloudwatch.IAlarmAction)
class _TopicAction:
    def __init__(self, arn: str) -> None:
        self._arn = arn

    def bind(self, scope: Construct, alarm: cloudwatch.IAlarm) -> cloudwatch.AlarmActionConfig:
        return cloudwatch.AlarmActionConfig(alarm_action_arn=self._arn)


@jsii.implements(cdk.IAspect)
class AlarmActions:
    """Adds a topic as alarm and OK action of every ``AWS::CloudWatch::Alarm`` it visits, except
    alarms whose action drives an Application Auto Scaling policy (scaling triggers fire by design).

    ``topic_arn_for(stack)`` gives the topic's ARN as that stack can reference
    it (the literal ARN, the topic's own attribute, or an import).
    """

    def __init__(self, topic_arn_for: Callable[[cdk.Stack], str]) -> None:
        self._topic_arn_for = topic_arn_for
        self._done: set[str] = set()

    @staticmethod
    def _drives_scaling(stack: cdk.Stack, actions: list) -> bool:
        policies = {stack.resolve(p.ref)["Ref"] for p in stack.node.find_all()
                    if isinstance(p, appscaling.CfnScalingPolicy)}
        return any(isinstance(a, dict) and a.get("Ref") in policies
                   or isinstance(a, str) and ":autoscaling:" in a and ":scalingPolicy:" in a for a in actions)

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cloudwatch.CfnAlarm) or node.node.path in self._done:
            return
        self._done.add(node.node.path)
        stack = cdk.Stack.of(node)
        if self._drives_scaling(stack, stack.resolve(node.alarm_actions) or []):
            # A step-scaling trigger (scale out from zero): it fires on every cold start by design, and
            # paging someone for each would bury the real alarms.
            return
        arn = self._topic_arn_for(stack)
        parent = node.node.scope
        if isinstance(parent, cloudwatch.Alarm):
            parent.add_alarm_action(_TopicAction(arn))
            parent.add_ok_action(_TopicAction(arn))
            return
        for prop in ("alarm_actions", "ok_actions"):
            current = getattr(node, prop)
            if current is None or isinstance(current, list):
                setattr(node, prop, [*(current or []), arn])
            else:  # a token: what it holds is unknown here, so the topic cannot be merged into it
                raise ValueError(f"{node.node.path}: {prop} is a token; add the alert topic to it where it is made")
        node.actions_enabled = True
