"""Batch job definitions for Trainium: multi-node training and single-node helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from ml_constructs import nag
from ml_constructs.storage import ArtifactLocation
from ml_constructs.trainium_batch.instances import TrainiumInstance
from ml_constructs.neuron_flags import TRAINIUM_TARGETS, validate_neuron_cc_flags
from ml_constructs.trainium_batch.retry import RetryRule, default_retry_rules, validate_retry

ENTRYPOINT = ("python3", "-m", "trainium_runtime.entrypoint")
REFERENCE_PROGRAM = ("-m", "trainium_runtime.train_reference")
DEVICE_PERMISSIONS = [batch.DevicePermission.READ, batch.DevicePermission.WRITE, batch.DevicePermission.MKNOD]
EFA_ENVIRONMENT = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"}
# The Neuron collectives' sockets on the task's own interface (awsvpc), as aws-neuron-samples'
# Batch scripts set it (torch-neuronx/training/aws-batch/all-reduce/docker/allreduce.sh).
SOCKET_ENVIRONMENT = {"CCOM_SOCKET_IFNAME": "eth0"}
METRICS_NAMESPACE = "MlAccel/Training"
# The tag every cluster host carries; the job role may terminate only hosts with it.
CLUSTER_TAG_KEY = "mlaccel:training-cluster"
MIN_NOFILE = 65535


@dataclass(frozen=True)
class TrainingLocations:
    """Where jobs read and write: the job role gets exactly these grants."""

    training_data: ArtifactLocation  # read
    checkpoints: ArtifactLocation  # read and write
    compile_cache: ArtifactLocation  # read and write (NEURON_COMPILE_CACHE_URL)
    outputs: ArtifactLocation  # write (evaluation metrics, embeddings)


@dataclass(frozen=True)
class TrainingJobSettings:
    """What the jobs run and how Batch treats their failures.

    Defaults: W4's compiler flags are the caller's to pass (no default here), 3
    attempts with :func:`default_retry_rules`, retryable exit code 75, 48 h per
    training attempt, 6 h per compile attempt and per single-node job, a 300 s
    rendezvous and a 900 s pre-flight barrier, no bandwidth floors.
    """

    neuron_cc_flags: str
    node_count: int = 4
    program: Sequence[str] = REFERENCE_PROGRAM
    retry_attempts: int = 3
    retryable_exit_code: int = 75
    retry_rules: Sequence[RetryRule] | None = None  # None: default_retry_rules(retryable_exit_code)
    timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(48))
    compile_timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(6))
    single_node_timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(6))
    rendezvous_timeout_seconds: int = 300
    barrier_timeout_seconds: int = 900
    hang_after_seconds: int = 3600  # a run that reported progress and then stopped this long is stopped
    intra_node_busbw_floor_gbps: float = 0.0
    cross_node_busbw_floor_gbps: float = 0.0
    cluster_tag_value: str = ""  # "" : failed hosts are not terminated (no permission either)
    checkpoint_every_steps: int = 500
    compile_steps: int = 5
    shared_memory_gib: int = 64
    container_memory_gib: int = 480

    @property
    def rules(self) -> tuple[RetryRule, ...]:
        return tuple(self.retry_rules) if self.retry_rules is not None else default_retry_rules(self.retryable_exit_code)


class TrainiumJobDefinitions(Construct):
    """The job definitions of the W4 pipeline, sharing one image, role and log group.

    Creates:
      - ``training``: a multi-node parallel job definition (nodes ``0:`` so a submission
        may override the node count) on ``instance`` with every Neuron device and every EFA
        device (host and container path, READ/WRITE/MKNOD), memlock unlimited, nofile 65535,
        shared memory, the EFA environment, ``CCOM_SOCKET_IFNAME=eth0``,
        ``NEURON_COMPILE_CACHE_URL`` and validated ``NEURON_CC_FLAGS``, the runtime's
        retry settings (retryable exit code, rendezvous and barrier timeouts, bandwidth
        floors), a timeout and a validated retry strategy;
      - ``compile``: the same multi-node definition running ``neuron_parallel_compile`` over
        a few steps, on the same node count (the compiled graphs carry the collective
        replica groups, so the cache is only useful when filled on the training topology);
      - ``evaluation`` and ``batch_inference``: single-node definitions sized to
        ``single_node_instance`` (all its Neuron devices, its vCPUs, its job memory);
      - ``job_role``: read training data, read/write checkpoints and the compile cache
        under their prefixes, write outputs, publish the heartbeat metric in
        ``MlAccel/Training`` only, and (with ``cluster_tag_value``) terminate hosts carrying
        the cluster tag, which is how a failed host takes itself out of service;
      - ``log_group`` for every job's output and an execution role that may write to it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ecs.ContainerImage,
        instance: TrainiumInstance,
        locations: TrainingLocations,
        settings: TrainingJobSettings,
        single_node_instance: TrainiumInstance | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        validate_neuron_cc_flags(settings.neuron_cc_flags, allowed_targets=TRAINIUM_TARGETS)
        validate_retry(settings.retry_attempts, settings.rules)
        if not 1 <= settings.node_count <= 256:
            raise ValueError(f"node_count: got {settings.node_count}, allowed range: 1 to 256")
        if settings.shared_memory_gib >= settings.container_memory_gib or settings.container_memory_gib >= instance.memory_gib:
            raise ValueError(
                f"memory: need shared_memory_gib ({settings.shared_memory_gib}) < container_memory_gib "
                f"({settings.container_memory_gib}) < the instance's {instance.memory_gib} GiB"
            )
        self._instance, self._settings, self._image = instance, settings, image
        self.settings = settings
        self._small = single_node_instance or instance
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        tasks = iam.ServicePrincipal("ecs-tasks.amazonaws.com")
        self.execution_role = iam.Role(self, "ExecutionRole", assumed_by=tasks, description="Pulls the image, writes logs")
        self.job_role = iam.Role(self, "JobRole", assumed_by=tasks, description="Trainium training jobs: data and checkpoints")
        locations.training_data.grant_read(self.job_role)
        locations.checkpoints.grant_read_write(self.job_role)
        locations.compile_cache.grant_read_write(self.job_role)
        locations.outputs.grant_write(self.job_role)
        self._grant_runtime(settings.cluster_tag_value)
        self._environment = {
            **EFA_ENVIRONMENT,
            **SOCKET_ENVIRONMENT,
            "NEURON_COMPILE_CACHE_URL": locations.compile_cache.s3_url,
            "NEURON_CC_FLAGS": settings.neuron_cc_flags,
            "TRAINING_DATA_URL": locations.training_data.s3_url,
            "CHECKPOINT_URL": locations.checkpoints.s3_url,
            "OUTPUT_URL": locations.outputs.s3_url,
            "CHECKPOINT_EVERY_STEPS": str(settings.checkpoint_every_steps),
            "RETRYABLE_EXIT_CODE": str(settings.retryable_exit_code),
            "RENDEZVOUS_TIMEOUT_SECONDS": str(settings.rendezvous_timeout_seconds),
            "BARRIER_TIMEOUT_SECONDS": str(settings.barrier_timeout_seconds),
            "NCCOM_BUSBW_FLOOR_GBPS": str(settings.intra_node_busbw_floor_gbps),
            "CROSS_NODE_BUSBW_FLOOR_GBPS": str(settings.cross_node_busbw_floor_gbps),
            "METRICS_NAMESPACE": METRICS_NAMESPACE,
            "HANG_AFTER_SECONDS": str(settings.hang_after_seconds),
            "QUARANTINE_FAILED_HOSTS": "true" if settings.cluster_tag_value else "false",
            # boto3 in the container (heartbeat metric, quarantine, checkpoints) takes its region from here:
            # Batch containers get no region variable of their own.
            "AWS_DEFAULT_REGION": cdk.Stack.of(self).region,
        }
        program = tuple(settings.program)
        self.training = self._multi_node("Training", ("train",), settings.timeout)
        self.compile = self._multi_node(
            "Compile", ("compile", "--steps", str(settings.compile_steps), "--", *program, "train"), settings.compile_timeout
        )
        self.evaluation = self._single_node("Evaluation", ("run", "--", *program, "evaluate"))
        self.batch_inference = self._single_node("BatchInference", ("run", "--", *program, "embed"))

    def _grant_runtime(self, cluster_tag_value: str) -> None:
        self.job_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            )
        )
        instances = cdk.Stack.of(self).format_arn(service="ec2", resource="instance", resource_name="*")
        if cluster_tag_value:
            self.job_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ec2:TerminateInstances"],
                    resources=[instances],
                    conditions={"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG_KEY}": cluster_tag_value}},
                )
            )
        nag.acknowledge(
            self.job_role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition "
            "limits it to the training heartbeat's namespace.",
        )
        if cluster_tag_value:
            nag.acknowledge_wildcard_resources(
                self.job_role,
                [instances],
                "A host that fails pre-flight terminates itself; its instance id is known only at run time, "
                f"and the aws:ResourceTag/{CLUSTER_TAG_KEY} condition limits this to the cluster's own hosts.",
            )

    def _container(
        self, id: str, command: Sequence[str], *, instance: TrainiumInstance, efa: bool, memory_gib: int, shm_gib: int
    ) -> batch.EcsEc2ContainerDefinition:
        linux = batch.LinuxParameters(self, f"{id}Linux", shared_memory_size=cdk.Size.gibibytes(shm_gib))
        paths = instance.neuron_device_paths + (instance.efa_device_paths if efa else ())
        linux.add_devices(
            *(batch.Device(host_path=p, container_path=p, permissions=DEVICE_PERMISSIONS) for p in paths)
        )
        environment = {
            **self._environment,
            "NEURON_DEVICE_COUNT": str(instance.neuron_devices),
            "EFA_DEVICE_COUNT": str(instance.efa_interfaces),
        }
        return batch.EcsEc2ContainerDefinition(
            self,
            f"{id}Container",
            image=self._image,
            cpu=instance.vcpus,
            memory=cdk.Size.gibibytes(memory_gib),
            command=[*ENTRYPOINT, *command],
            environment=environment,
            execution_role=self.execution_role,
            job_role=self.job_role,
            linux_parameters=linux,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=id.lower(), log_group=self.log_group),
            ulimits=[
                # EFA registers (pins) large buffers: memlock must be unlimited (-1).
                batch.Ulimit(name=batch.UlimitName.MEMLOCK, soft_limit=-1, hard_limit=-1),
                batch.Ulimit(name=batch.UlimitName.NOFILE, soft_limit=MIN_NOFILE, hard_limit=MIN_NOFILE),
            ],
        )

    def _retry_strategies(self) -> list[batch.RetryStrategy]:
        return [
            batch.RetryStrategy.of(
                batch.Action.RETRY if rule.action == "RETRY" else batch.Action.EXIT,
                batch.Reason.custom(
                    on_status_reason=rule.on_status_reason, on_reason=rule.on_reason, on_exit_code=rule.on_exit_code
                ),
            )
            for rule in self._settings.rules
        ]

    def _multi_node(self, id: str, command: Sequence[str], timeout: cdk.Duration) -> batch.MultiNodeJobDefinition:
        settings = self._settings
        container = self._container(
            id, command, instance=self._instance, efa=True,
            memory_gib=settings.container_memory_gib, shm_gib=settings.shared_memory_gib,
        )
        definition = batch.MultiNodeJobDefinition(
            self,
            id,
            instance_type=ec2.InstanceType(self._instance.name),
            main_node=0,
            containers=[batch.MultiNodeContainer(container=container, start_node=0, end_node=settings.node_count - 1)],
            retry_attempts=settings.retry_attempts,
            retry_strategies=self._retry_strategies(),
            timeout=timeout,
            propagate_tags=True,
        )
        cfn = definition.node.default_child
        assert isinstance(cfn, batch.CfnJobDefinition)
        # The L2 renders the closed range "0:<n-1>", which breaks a submission that raises
        # numNodes (nodes without a container). "0:" covers every node of any job size.
        cfn.add_property_override("NodeProperties.NodeRangeProperties.0.TargetNodes", "0:")
        return definition

    def _single_node(self, id: str, command: Sequence[str]) -> batch.EcsJobDefinition:
        small = self._small
        memory = small.job_memory_gib or self._settings.container_memory_gib
        shm = min(self._settings.shared_memory_gib, memory // 4)
        return batch.EcsJobDefinition(
            self,
            id,
            container=self._container(id, command, instance=small, efa=False, memory_gib=memory, shm_gib=shm),
            retry_attempts=self._settings.retry_attempts,
            retry_strategies=self._retry_strategies(),
            timeout=self._settings.single_node_timeout,
            propagate_tags=True,
        )

    @property
    def multi_node(self) -> list[batch.IJobDefinition]:
        return [self.compile, self.training]

    @property
    def single_node(self) -> list[batch.IJobDefinition]:
        return [self.evaluation, self.batch_inference]

    @property
    def all(self) -> list[batch.IJobDefinition]:
        return [*self.multi_node, *self.single_node]
