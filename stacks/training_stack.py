"""Workload W4: multi-node LLM training on Trainium with AWS Batch (a thin composition)."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.training import FIND_AMI, FIND_AZ, TrainingConfig
from ml_constructs import nag
from ml_constructs.trainium_batch import (
    ClusterNetwork,
    ExistingVpc,
    FairShareJobQueue,
    TrainingJobSettings,
    TrainingLocations,
    TrainingPipeline,
    TrainiumComputeEnvironment,
    TrainiumJobDefinitions,
    trainium_instance,
)
from ml_constructs.trainium_batch.compute import SingleNodeComputeEnvironment
from ml_constructs.trainium_batch.image import training_image
from ml_constructs.trainium_batch.job_definitions import CLUSTER_TAG_KEY
from ml_constructs.trainium_batch.monitoring import TrainingMonitoring
from stacks.base import PlatformStack
from stacks.storage_stack import ArtifactStorageStack


class TrainingStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        training: TrainingConfig,
        storage: ArtifactStorageStack,
        retain_data: bool,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        locations = storage.locations_for(self)
        removal = cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY
        retention = _retention(training.log_retention_days)
        instance = trainium_instance(training.instance_type)
        small = trainium_instance(training.evaluation_instance_type)
        existing = training.existing_vpc
        availability_zone, ami_id = self._placement(training)
        update_timeout = cdk.Duration.minutes(training.update_timeout)
        # Hosts carry this tag; the job role may terminate only hosts with it (a failed host's quarantine).
        cluster_tag = {CLUSTER_TAG_KEY: self.stack_name}
        self.network = ClusterNetwork(
            self,
            "Network",
            availability_zone=availability_zone,
            existing_vpc=(
                ExistingVpc(existing.vpc_id, existing.subnet_ids, availability_zone,
                            existing.default_security_group_id)
                if existing is not None
                else None
            ),
            cidr=training.vpc_cidr,
            egress=training.egress,
            log_retention=retention,
            removal_policy=removal,
        )
        self.compute = TrainiumComputeEnvironment(
            self,
            "Compute",
            network=self.network,
            instance=instance,
            max_nodes=training.capacity_nodes,
            ami_id=ami_id,
            update_timeout=update_timeout,
            instance_tags=cluster_tag,
            root_volume_gib=training.root_volume_gib,
            capacity_reservation_id=training.capacity_reservation_id,
            efa_software=training.efa_software,
        )
        self.single_node_compute = SingleNodeComputeEnvironment(
            self,
            "SingleNodeCompute",
            network=self.network,
            instance=small,
            ami_id=ami_id,
            update_timeout=update_timeout,
            max_instances=training.evaluation_max_instances,
            instance_tags=cluster_tag,
            root_volume_gib=training.root_volume_gib,
        )
        queue_settings = dict(
            shares=dict(training.shares),
            share_decay=cdk.Duration.seconds(training.share_decay_seconds),
            compute_reservation=training.compute_reservation,
            runnable_time_limit=cdk.Duration.seconds(training.runnable_time_limit_seconds),
        )
        self.queue = FairShareJobQueue(self, "Queue", compute_environment=self.compute.compute_environment,
                                       **queue_settings)
        self.single_node_queue = FairShareJobQueue(
            self, "SingleNodeQueue", compute_environment=self.single_node_compute.compute_environment, **queue_settings
        )
        image, pulls_from_ecr = training_image(self, training.image_uri, training.profile)
        self.jobs = TrainiumJobDefinitions(
            self,
            "Jobs",
            image=image,
            instance=instance,
            single_node_instance=small,
            locations=TrainingLocations(
                training_data=locations.training_data,
                checkpoints=locations.checkpoints,
                compile_cache=locations.compile_cache,
                outputs=locations.training_outputs,
            ),
            settings=TrainingJobSettings(
                neuron_cc_flags=training.neuron_cc_flags,
                node_count=training.node_count,
                retry_attempts=training.retry_attempts,
                retryable_exit_code=training.retryable_exit_code,
                timeout=cdk.Duration.seconds(training.job_timeout_seconds),
                compile_timeout=cdk.Duration.seconds(training.compile_timeout_seconds),
                single_node_timeout=cdk.Duration.seconds(training.single_node_timeout_seconds),
                rendezvous_timeout_seconds=training.rendezvous_timeout_seconds,
                barrier_timeout_seconds=training.barrier_timeout_seconds,
                hang_after_seconds=training.hang_alarm_minutes * 60,
                intra_node_busbw_floor_gbps=training.intra_node_busbw_floor_gbps,
                cross_node_busbw_floor_gbps=training.cross_node_busbw_floor_gbps,
                cluster_tag_value=self.stack_name,
                checkpoint_every_steps=training.checkpoint_every_steps,
                compile_steps=training.compile_steps,
                shared_memory_gib=training.shared_memory_gib,
                container_memory_gib=training.container_memory_gib,
            ),
            log_retention=retention,
            removal_policy=removal,
        )
        if pulls_from_ecr:
            nag.acknowledge(
                self.jobs.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken (needed to pull the training image) has no resource-level permissions.",
            )
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            queue=self.queue,
            single_node_queue=self.single_node_queue,
            jobs=self.jobs,
            share_identifier=training.pipeline_share,
            node_count=training.node_count,
            timeout=cdk.Duration.hours(training.pipeline_timeout),
            log_retention=retention,
            removal_policy=removal,
        )
        self.monitoring = TrainingMonitoring(
            self,
            "Monitoring",
            job_queue_arns=[self.queue.job_queue.job_queue_arn, self.single_node_queue.job_queue.job_queue_arn],
            job_log_group=self.jobs.log_group,
            state_machine=self.pipeline.state_machine,
        )
        outputs = {
            "JobQueueArn": self.queue.job_queue.job_queue_arn,
            "SingleNodeJobQueueArn": self.single_node_queue.job_queue.job_queue_arn,
            "TrainingJobDefinitionArn": self.jobs.training.job_definition_arn,
            "CompileJobDefinitionArn": self.jobs.compile.job_definition_arn,
            "EvaluationJobDefinitionArn": self.jobs.evaluation.job_definition_arn,
            "BatchInferenceJobDefinitionArn": self.jobs.batch_inference.job_definition_arn,
            "PipelineStateMachineArn": self.pipeline.state_machine.state_machine_arn,
        }
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)


    def _placement(self, training: TrainingConfig) -> tuple[str, str]:
        """The cluster's AZ and AMI: the configured values, or (environment-agnostic synth only)
        CloudFormation parameters without defaults, so a deploy must name real ones."""
        missing = [k for k in ("availability_zone", "ami_id") if getattr(training, k) is None]
        if missing and not cdk.Token.is_unresolved(self.region):
            raise ValueError(f"training.{missing[0]}: required where the stack's region is pinned")
        zone, ami = training.availability_zone, training.ami_id
        if zone is None:
            zone = cdk.CfnParameter(
                self, AZ_PARAMETER, type="String", allowed_pattern=AZ_ID_PATTERN,
                constraint_description="an AZ ID such as usw2-az4 that offers the training instance type",
                description="AZ ID of the training cluster (training.availability_zone); list them with: " + FIND_AZ,
            ).value_as_string
        if ami is None:
            ami = cdk.CfnParameter(
                self, AMI_PARAMETER, type="AWS::EC2::Image::Id",
                description="ECS AL2023 Neuron AMI of the region (training.ami_id); find it with: " + FIND_AMI,
            ).value_as_string
        return zone, ami


# Deploy-time parameters of an environment-agnostic synth (docs/training.md, "Before you deploy").
AZ_PARAMETER = "AvailabilityZoneId"
AMI_PARAMETER = "AmiId"
AZ_ID_PATTERN = "[a-z]{2,4}[0-9]-az[0-9]{1,2}"

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def _retention(days: int) -> logs.RetentionDays:
    return logs.RetentionDays[_RETENTION[days]]
