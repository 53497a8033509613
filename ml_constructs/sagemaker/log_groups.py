"""Log groups the stacks own, and alarms on what the models write to them.

SageMaker writes an endpoint's container logs to ``/aws/sagemaker/Endpoints/<endpoint name>`` and
an inference component's to ``/aws/sagemaker/InferenceComponents/<component name>``, creating the
group on first write (no retention, no customer managed key) unless it exists. The endpoint
constructs give endpoints and components deterministic names (:func:`physical_name`), so the
groups can be created by the stack before SageMaker writes: retention from the construct, the
environment's key from the app's NIST baseline aspect (``ml_constructs.compliance``), and the
execution role's log permissions on those groups only.

A model that loads but fails its requests may never move ``Invocation5XXErrors`` (the Hugging
Face inference toolkit answers every handler exception with 400, DJL's built-in handlers with
424): :func:`log_term_alarm` counts a line the serving stack writes once per failed request with
a metric filter, and alarms on it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from ml_constructs.sagemaker.execution_role import LOG_ACTIONS

ENDPOINT_LOG_PREFIX = "/aws/sagemaker/Endpoints/"
COMPONENT_LOG_PREFIX = "/aws/sagemaker/InferenceComponents/"
# The platform's log contract: every handler we ship logs exactly one line containing this token
# when the model fails a valid request, never for a client error (docs/operations.md, "Model errors").
MODEL_ERROR_TOKEN = "ml_platform.model_error"
# Metric filters publish here, one metric per log group (named after the endpoint or component).
MODEL_ERROR_NAMESPACE = "MlPlatform/ModelErrors"
# SageMaker endpoint and inference component names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
NAME_MAX_LENGTH = 63


@dataclass(frozen=True)
class EndpointLogs:
    """Retention and removal of the log groups an endpoint construct creates.

    Default settings: three months; the group is deleted with the stack. A retained group would
    keep its fixed name and make the next create of the same stack fail ("already exists").
    """

    retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.DESTROY


@dataclass(frozen=True)
class LogTerm:
    """A line the serving stack writes once per failed request: ``term`` is matched as a quoted
    phrase (case-sensitive substring), ``source`` says who writes it (alarm description and docs)."""

    term: str
    source: str

    @property
    def pattern(self) -> logs.IFilterPattern:
        return logs.FilterPattern.all_terms(self.term)


def physical_name(scope: Construct, max_length: int = NAME_MAX_LENGTH) -> str:
    """A deterministic SageMaker name for ``scope``: its path in the app, alphanumerics and
    hyphens, at most ``max_length`` characters, with CDK's hash of the full path (unique per app)."""
    return cdk.Names.unique_resource_name(scope, max_length=max_length, separator="-")


def owned_log_group(scope: Construct, construct_id: str, name: str, settings: EndpointLogs) -> logs.LogGroup:
    """The log group SageMaker would otherwise create for ``name`` (``/aws/sagemaker/...``)."""
    return logs.LogGroup(scope, construct_id, log_group_name=name, retention=settings.retention,
                         removal_policy=settings.removal_policy)


def grant_log_writes(role: iam.IRole, group: logs.ILogGroup) -> None:
    """SageMaker's log writes with ``role``, on ``group`` and its streams only.

    ``logs:CreateLogGroup`` stays (on this group only): the agent may call it, and it then only
    answers "already exists"."""
    iam.Grant.add_to_principal(grantee=role, actions=list(LOG_ACTIONS),
                               resource_arns=[group.log_group_arn])


def log_term_alarm(
    scope: Construct, construct_id: str, *, group: logs.ILogGroup, term: LogTerm, metric_name: str,
    alarm_name: str, threshold: float, evaluation_periods: int, period_seconds: int, what: str,
) -> cloudwatch.Alarm:
    """A metric filter counting ``term`` in ``group`` and an alarm when it is seen in every one of
    ``evaluation_periods`` periods (as the 5XX alarm): one failed request is noise, failures that
    go on are a broken model."""
    metric_filter = logs.MetricFilter(
        scope, f"{construct_id}Filter", log_group=group, filter_pattern=term.pattern,
        metric_namespace=MODEL_ERROR_NAMESPACE, metric_name=metric_name, metric_value="1",
    )
    return metric_filter.metric(statistic="Sum", period=cdk.Duration.seconds(period_seconds)).create_alarm(
        scope, construct_id, alarm_name=alarm_name, threshold=threshold, evaluation_periods=evaluation_periods,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=f"{what}: requests that failed in the model ({term.source})",
    )


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def filter_pattern_matches(pattern: str, message: str) -> bool:
    """Whether CloudWatch Logs' term filter ``pattern`` matches the log event ``message``.

    Only the term form this module writes is implemented: space-separated terms, each quoted
    (``"a.b"``, an exact, case-sensitive phrase) or bare, all of which must occur in the event
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html, "Using
    filter patterns to match terms in unstructured log events"). JSON, space-delimited (``[...]``),
    regex (``%...%``), ``?`` (OR) and ``-`` (exclusion) patterns raise ``ValueError``.
    """
    stripped = pattern.strip()
    if not stripped or stripped[0] in "{[%?" or re.search(r"(^|\s)[?-]", stripped):
        raise ValueError(f"not a term pattern of the form this module writes: {pattern!r}")
    terms = [m[1].replace('\\"', '"') if m[1] is not None else m[2] for m in _QUOTED.finditer(stripped)]
    return all(term in message for term in terms)
