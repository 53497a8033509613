"""Step Functions: compile -> train -> evaluate -> batch inference, each a Batch ``.sync`` job."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from ml_constructs import nag
from ml_constructs.trainium_batch.job_definitions import TrainiumJobDefinitions
from ml_constructs.trainium_batch.queue import FairShareJobQueue

# Every step of one execution works on the same run: checkpoints of the training step
# are what evaluation and batch inference read.
_RUN_ID = [{"Name": "RUN_ID", "Value.$": "$$.Execution.Name"}]


class TrainingPipeline(Construct):
    """A state machine running the W4 pipeline on a fair-share queue.

    Creates a state machine whose four steps each submit a Batch job and wait for it
    (``arn:aws:states:::batch:submitJob.sync``, the RUN_JOB pattern) under
    ``share_identifier``; the execution name becomes ``RUN_ID`` of every job. A failed
    job fails the execution with error ``BatchJobFailed`` and the job's status reason
    as the cause; any other error (timeout, API error) fails it with its own error.
    Logging (ALL events) and X-Ray tracing are on.

    aws-cdk-lib's ``tasks.BatchSubmitJob`` cannot pass ``ShareIdentifier`` (required on
    a fair-share queue) nor ``NodeOverrides``, so each step is a ``CustomState`` with
    the same service integration, and the role gets exactly the permissions
    Step Functions documents for it, scoped to this queue, these job definitions and share.

    Attributes: ``state_machine``, ``log_group``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: FairShareJobQueue,
        jobs: TrainiumJobDefinitions,
        share_identifier: str,
        timeout: cdk.Duration = cdk.Duration.hours(72),
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self._queue, self._share = queue, share_identifier
        failed_job = sfn.Fail(self, "BatchJobFailed", error="BatchJobFailed", cause_path="$.job.StatusReason")
        describe = sfn.Pass(
            self,
            "ReadJobFailure",
            parameters={"job.$": "States.StringToJson($.failure.Cause)"},
        ).next(failed_job)
        other_error = sfn.Fail(self, "StepFailed", error_path="$.failure.Error", cause_path="$.failure.Cause")

        steps = [
            self._step("Compile", jobs.compile, multi_node=False),
            self._step("Train", jobs.training, multi_node=True),
            self._step("Evaluate", jobs.evaluation, multi_node=False),
            self._step("BatchInference", jobs.batch_inference, multi_node=False),
        ]
        for step in steps:
            step.add_catch(describe, errors=["States.TaskFailed"], result_path="$.failure")
            step.add_catch(other_error, errors=["States.ALL"], result_path="$.failure")
        definition = sfn.Chain.start(steps[0])
        for step in steps[1:]:
            definition = definition.next(step)

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.state_machine = sfn.StateMachine(
            self,
            "Resource",
            definition_body=sfn.DefinitionBody.from_chainable(definition.next(sfn.Succeed(self, "Done"))),
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL),
        )
        self._grant(jobs)

    def _step(self, name: str, definition: batch.IJobDefinition, *, multi_node: bool) -> sfn.CustomState:
        parameters: dict = {
            "JobName.$": f"States.Format('{name}-{{}}', $$.Execution.Name)",
            "JobQueue": self._queue.job_queue.job_queue_arn,
            "JobDefinition": definition.job_definition_arn,
            "ShareIdentifier": self._share,
        }
        if multi_node:
            parameters["NodeOverrides"] = {
                "NodePropertyOverrides": [{"TargetNodes": "0:", "ContainerOverrides": {"Environment": _RUN_ID}}]
            }
        else:
            parameters["ContainerOverrides"] = {"Environment": _RUN_ID}
        return sfn.CustomState(
            self,
            name,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{cdk.Aws.PARTITION}:states:::batch:submitJob.sync",
                "Parameters": parameters,
                "ResultPath": f"$.{name[0].lower()}{name[1:]}",
            },
        )

    def _grant(self, jobs: TrainiumJobDefinitions) -> None:
        role = self.state_machine.role
        self._queue.grant_submit_job(role, self._share, jobs.all)
        stack = cdk.Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule/StepFunctionsGetEventsForBatchJobsRule")],
            )
        )
        jobs_arn = stack.format_arn(service="batch", resource="job", resource_name="*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:TerminateJob"], resources=[jobs_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:DescribeJobs"], resources=["*"]))
        nag.acknowledge_wildcard_resources(
            role,
            [jobs_arn],
            "Stopping an execution terminates its running Batch job; job ids are only known at run time.",
        )
        nag.acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "batch:DescribeJobs (the .sync integration), X-Ray tracing and CloudWatch Logs delivery "
            "actions support no resource-level permissions.",
        )
