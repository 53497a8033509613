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
# Batch API errors worth another SubmitJob: throttling and Batch's own server errors
# (Step Functions names a service integration's errors <Service>.<exception>).
BATCH_API_RETRY_ERRORS = ["Batch.ServerException", "Batch.ThrottlingException", "Batch.TooManyRequestsException",
                          "Batch.AWSBatchException"]


def worst_case(attempts: int, timeouts: list[cdk.Duration]) -> cdk.Duration:
    """The longest an execution can run: every step uses every attempt to its timeout."""
    return cdk.Duration.seconds(attempts * sum(int(t.to_seconds()) for t in timeouts))


class TrainingPipeline(Construct):
    """A state machine running the W4 pipeline on fair-share queues.

    Creates a state machine whose four steps each submit a Batch job and wait for it
    (``arn:aws:states:::batch:submitJob.sync``, the RUN_JOB pattern) under
    ``share_identifier``: compile and train as multi-node jobs of ``node_count`` nodes
    (default: the job definitions' count) on
    ``queue`` (the compile fills the cache for exactly the training's ranks), evaluation
    and batch inference on ``single_node_queue``. The execution name becomes ``RUN_ID``
    of every job and its ``RunId`` tag (with ``ShareIdentifier``: Batch split cost
    allocation attributes cost by these); job names are ``<step>-<MD5 of the execution
    name>`` because execution names may hold characters job names may not ('.').
    SubmitJob is retried on Batch throttling and server errors. A failed job fails the
    execution with error ``BatchJobFailed`` and Batch's ``Cause`` text as is (never
    parsed: a multi-node job's cause can be large); any other error fails it with its
    own error. ``timeout`` must cover the worst case (every attempt of every step to its
    timeout). Logging (ALL events) and X-Ray tracing are on.

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
        timeout: cdk.Duration,
        node_count: int | None = None,
        single_node_queue: FairShareJobQueue | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = jobs.settings
        self.worst_case = worst_case(
            settings.retry_attempts,
            [settings.compile_timeout, settings.timeout, settings.single_node_timeout, settings.single_node_timeout],
        )
        if timeout.to_seconds() < self.worst_case.to_seconds():
            raise ValueError(
                f"timeout: got {timeout.to_hours():g} h, below the worst case of {self.worst_case.to_hours():g} h "
                "(attempts x (compile + training + evaluation + batch inference timeouts))"
            )
        node_count = settings.node_count if node_count is None else node_count
        if not 1 <= node_count <= 256:
            raise ValueError(f"node_count: got {node_count}, allowed range: 1 to 256")
        self._share, self._node_count = share_identifier, node_count
        small_queue = single_node_queue or queue
        failed_job = sfn.Fail(self, "BatchJobFailed", error="BatchJobFailed", cause_path="$.failure.Cause")
        other_error = sfn.Fail(self, "StepFailed", error_path="$.failure.Error", cause_path="$.failure.Cause")

        steps = [
            self._step("Compile", jobs.compile, queue, multi_node=True),
            self._step("Train", jobs.training, queue, multi_node=True),
            self._step("Evaluate", jobs.evaluation, small_queue, multi_node=False),
            self._step("BatchInference", jobs.batch_inference, small_queue, multi_node=False),
        ]
        for step in steps:
            step.add_retry(errors=BATCH_API_RETRY_ERRORS, interval=cdk.Duration.seconds(10), max_attempts=5,
                           backoff_rate=2)
            step.add_catch(failed_job, errors=["States.TaskFailed"], result_path="$.failure")
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
        queue.grant_submit_job(self.state_machine.role, share_identifier, jobs.multi_node)
        small_queue.grant_submit_job(self.state_machine.role, share_identifier, jobs.single_node)
        self._grant()

    def _step(
        self, name: str, definition: batch.IJobDefinition, queue: FairShareJobQueue, *, multi_node: bool
    ) -> sfn.CustomState:
        parameters: dict = {
            "JobName.$": f"States.Format('{name}-{{}}', States.Hash($$.Execution.Name, 'MD5'))",
            "JobQueue": queue.job_queue.job_queue_arn,
            "JobDefinition": definition.job_definition_arn,
            "ShareIdentifier": self._share,
            "Tags": {"RunId.$": "$$.Execution.Name", "ShareIdentifier": self._share, "PipelineStep": name},
            "PropagateTags": True,
        }
        if multi_node:
            parameters["NodeOverrides"] = {
                "NumNodes": self._node_count,
                "NodePropertyOverrides": [{"TargetNodes": "0:", "ContainerOverrides": {"Environment": _RUN_ID}}],
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

    def _grant(self) -> None:
        role = self.state_machine.role
        stack = cdk.Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule/StepFunctionsGetEventsForBatchJobsRule")],
            )
        )
        jobs_arn = stack.format_arn(service="batch", resource="job", resource_name="*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:TerminateJob"], resources=[jobs_arn]))
        # Tags on SubmitJob need batch:TagResource, allowed only as part of SubmitJob.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["batch:TagResource"], resources=[jobs_arn],
            conditions={"StringEquals": {"batch:CreateAction": "SubmitJob"}},
        ))
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
