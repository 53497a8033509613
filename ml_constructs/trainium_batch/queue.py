"""A fair-share Batch job queue, and the grant that keeps each team to its share."""
from __future__ import annotations

from typing import Mapping

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from constructs import Construct

from ml_constructs.trainium_batch.limits import fair_share_problems

# Why a job can sit RUNNABLE for ever: no capacity, a full compute environment, or a job
# that asks for more than any instance has. The queue cancels such jobs after a time limit.
STUCK_RUNNABLE_REASONS = (
    batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
    batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
    batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
)


class FairShareJobQueue(Construct):
    """A job queue created with a fair-share scheduling policy.

    Creates a ``SchedulingPolicy`` (one share per team with its weight factor, share decay,
    compute reservation) attached at creation (Batch cannot attach one later) and a
    ``JobQueue`` over ``compute_environment`` whose ``jobStateTimeLimitActions`` cancel
    jobs stuck RUNNABLE longer than ``runnable_time_limit`` for lack of capacity or a
    misconfiguration (600-86,400 s).

    Default settings: share decay 1 h, compute reservation 0 %, RUNNABLE limit 1 h.

    Attributes: ``job_queue``, ``scheduling_policy``, ``share_identifiers``.
    Methods: :meth:`grant_submit_job` restricts a principal to one share.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        compute_environment: batch.IComputeEnvironment,
        shares: Mapping[str, float],
        share_decay: cdk.Duration = cdk.Duration.hours(1),
        compute_reservation: int = 0,
        runnable_time_limit: cdk.Duration = cdk.Duration.hours(1),
    ) -> None:
        super().__init__(scope, construct_id)
        problems = [
            f"{key}: {message}"
            for key, message in fair_share_problems(shares, int(share_decay.to_seconds()), compute_reservation)
        ]
        limit = runnable_time_limit.to_seconds()
        if not 600 <= limit <= 86400:
            problems.append(f"runnable_time_limit: got {int(limit)} s, allowed range: 600 to 86400 s")
        if problems:
            raise ValueError("FairShareJobQueue: " + "; ".join(problems))
        self.share_identifiers = tuple(sorted(shares))
        self.scheduling_policy = batch.FairshareSchedulingPolicy(
            self,
            "SchedulingPolicy",
            share_decay=share_decay,
            compute_reservation=compute_reservation,
            shares=[batch.Share(share_identifier=name, weight_factor=shares[name]) for name in self.share_identifiers],
        )
        self.job_queue = batch.JobQueue(
            self,
            "Resource",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=compute_environment, order=1)],
            scheduling_policy=self.scheduling_policy,
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(
                    max_time=runnable_time_limit,
                    reason=reason,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                    state=batch.JobStateTimeLimitActionsState.RUNNABLE,
                )
                for reason in STUCK_RUNNABLE_REASONS
            ],
        )

    def grant_submit_job(
        self, grantee: iam.IGrantable, share_identifier: str, job_definitions: list[batch.IJobDefinition]
    ) -> iam.Grant:
        """Allow ``batch:SubmitJob`` on this queue and ``job_definitions`` only under ``share_identifier``.

        The ``batch:ShareIdentifier`` condition key makes Batch refuse a submission
        naming any other share (or none).
        """
        if share_identifier not in self.share_identifiers:
            raise ValueError(
                f"share_identifier: got {share_identifier!r}, allowed: {', '.join(self.share_identifiers)}"
            )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["batch:SubmitJob"],
            resource_arns=[self.job_queue.job_queue_arn, *(d.job_definition_arn for d in job_definitions)],
            conditions={"StringEquals": {"batch:ShareIdentifier": share_identifier}},
        )
