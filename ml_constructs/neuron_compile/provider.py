"""The custom resource provider: two boto3-only Lambda handlers behind ``custom_resources.Provider``."""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from ml_constructs import nag
from ml_constructs.storage import ArtifactLocation

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
HANDLER_RUNTIME = lambda_.Runtime.PYTHON_3_14
SERVICE_NAME = "neuron-compile"
_RETENTION = logs.RetentionDays.THREE_MONTHS


class CompileProvider(Construct):
    """``on_event`` submits (or skips) the compile job; ``is_complete`` polls it.

    Creates ``on_event_function`` and ``is_complete_function`` (Python, boto3 only,
    code = the ``runtime/`` folder as is), their ``role`` and ``provider``, whose
    waiter state machine polls every ``query_interval`` until ``total_timeout``.

    The role may: submit jobs to this queue with this job definition; list,
    describe and terminate Batch jobs (ListJobs and DescribeJobs have no
    resource-level permissions); list exactly the output's ``manifest.json`` key.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        job_queue: batch.IJobQueue,
        job_definition: batch.IJobDefinition,
        output: ArtifactLocation,
        total_timeout: cdk.Duration,
        query_interval: cdk.Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(self, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Neuron compile custom resource handlers")
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["batch:SubmitJob"],
            resources=[job_queue.job_queue_arn, job_definition.job_definition_arn],
        ))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["batch:ListJobs", "batch:DescribeJobs"], resources=["*"],
        ))
        terminate_arn = stack.format_arn(service="batch", resource="job", resource_name="*")
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:TerminateJob"], resources=[terminate_arn]))
        manifest_key = f"{output.prefix}manifest.json"
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[output.bucket.bucket_arn],
            conditions={"StringEquals": {"s3:prefix": manifest_key}},
        ))
        nag.acknowledge_wildcard_resources(
            self.role,
            ["*", terminate_arn],
            "Batch ListJobs and DescribeJobs support no resource-level permissions, and the job id to "
            "terminate is only known at run time; every job this role submits goes to its own queue.",
        )

        code = lambda_.Code.from_asset(str(RUNTIME_DIR), exclude=["__pycache__", "*.pyc"])
        environment = {"POWERTOOLS_SERVICE_NAME": SERVICE_NAME, "LOG_LEVEL": "INFO"}
        self.on_event_function = self._function("OnEvent", "handler.on_event", code, environment)
        self.is_complete_function = self._function("IsComplete", "handler.is_complete", code, environment)

        framework_logs = logs.LogGroup(self, "FrameworkLogs", retention=_RETENTION,
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
        # Own roles for the framework's Lambdas: they log to framework_logs only, instead of
        # the AWSLambdaBasicExecutionRole managed policy the Provider would attach.
        framework_roles = {}
        for name in ("FrameworkOnEventRole", "FrameworkCompleteAndTimeoutRole"):
            framework_roles[name] = iam.Role(self, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                             description="Custom resource provider framework (aws-cdk-lib)")
            framework_logs.grant_write(framework_roles[name])
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event_function,
            is_complete_handler=self.is_complete_function,
            total_timeout=total_timeout,
            query_interval=query_interval,
            log_group=framework_logs,
            framework_on_event_role=framework_roles["FrameworkOnEventRole"],
            framework_complete_and_timeout_role=framework_roles["FrameworkCompleteAndTimeoutRole"],
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=logs.LogGroup(self, "WaiterLogs", retention=_RETENTION,
                                          removal_policy=cdk.RemovalPolicy.DESTROY),
                level=sfn.LogLevel.ALL,
            ),
        )
        self.service_token = self.provider.service_token
        self._acknowledge_framework_findings(framework_roles.values())

    def _acknowledge_framework_findings(self, framework_roles) -> None:
        """Findings in what aws-cdk-lib's Provider framework creates, which this project cannot change."""
        invoked = [self.on_event_function, self.is_complete_function]
        framework = self.provider.node.find_child("framework-isComplete"), self.provider.node.find_child(
            "framework-onTimeout")
        reason = ("The Provider framework grants lambda:InvokeFunction on the handler's ARN and its versions "
                  "(<arn>:*); it invokes only these functions.")
        for role in framework_roles:
            nag.acknowledge_wildcard_resources(role, [f"{fn.function_arn}:*" for fn in invoked], reason)
        waiter = self.provider.node.find_child("waiter-state-machine")
        nag.acknowledge_wildcard_resources(
            waiter.node.find_child("Role"), [f"{fn.function_arn}:*" for fn in framework], reason)
        nag.acknowledge_wildcard_resources(
            waiter.node.find_child("Role"), ["*"],
            "CloudWatch Logs log delivery for Step Functions (logs:CreateLogDelivery and related actions) "
            "does not support resource-level permissions.")
        nag.acknowledge(waiter, "AwsSolutions-SF2",
                        "The waiter state machine only polls is_complete every query interval; its executions "
                        "are logged in full to CloudWatch Logs and X-Ray tracing would add no insight.")

    def _function(self, construct_id: str, handler: str, code: lambda_.Code, environment: dict[str, str]) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=_RETENTION,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        log_group.grant_write(self.role)
        return lambda_.Function(
            self,
            construct_id,
            runtime=HANDLER_RUNTIME,
            handler=handler,
            code=code,
            role=self.role,
            timeout=cdk.Duration.minutes(1),
            memory_size=256,
            environment=environment,
            log_group=log_group,
            description=f"Neuron compile custom resource: {handler}",
        )
