"""Configuration of workload W4: multi-node LLM training on Trainium with AWS Batch.

Defaults are W4's documented values (docs/workloads.md) and the
limits of docs/aws-limits.md ("AWS Batch on Trainium", "Neuron compiler").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from config.runtime import profile_for, runtime_setting
from config.typed import setting
from ml_constructs.neuron_flags import TRAINIUM_TARGETS, neuron_cc_flag_problems, parse_neuron_cc_flags
from ml_constructs.trainium_batch.limits import fair_share_problems, image_uri_problem
from runtime_profiles import RuntimeProfile

# An AZ name (us-west-2d) or an AZ ID (usw2-az4: the same physical zone in every account).
AZ_PATTERN = r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]|[a-z]{2,4}\d-az\d{1,2}"
FIND_AZ = ("aws ec2 describe-instance-type-offerings --location-type availability-zone-id "
           "--filters Name=instance-type,Values=trn1.32xlarge --region <region>")
FIND_AMI = ("aws ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id "
            "--region <region> --query Parameter.Value")
AMI_PATTERN = r"ami-[0-9a-f]{8}([0-9a-f]{9})?"
CLUSTER_SUBNET_ADDRESSES = 4096 - 5  # the /20 cluster subnet; AWS reserves 5 addresses per subnet
MAX_PIPELINE_HOURS = 365 * 24  # Step Functions standard workflows run at most one year
W4_NEURON_CC_FLAGS = "--target trn1 --auto-cast all --auto-cast-type bf16 --model-type transformer --optlevel 1"


@dataclass(frozen=True)
class ExistingVpcConfig:
    """An existing VPC to run in instead of a new one (imported by id, no lookups)."""

    vpc_id: str = setting(pattern=r"vpc-[0-9a-f]{8,17}", doc="The VPC holding the subnets.")
    subnet_ids: tuple[str, ...] = setting(
        doc="Private subnets with egress, all in `availability_zone`; `training.egress` says which kind "
        "(a NAT, which installing EFA at boot needs, or VPC endpoints only).",
    )
    default_security_group_id: str = setting(
        pattern=r"sg-[0-9a-f]{8,17}",
        doc="The VPC's default security group: multi-node containers get it (docs/training.md, Networking).",
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not self.subnet_ids:
            found.append(("subnet_ids", "at least one subnet id is required"))
        for i, subnet in enumerate(self.subnet_ids):
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                found.append((f"subnet_ids[{i}]", f"got {subnet!r}, expected a subnet id such as subnet-0123456789abcdef0"))
        if len(set(self.subnet_ids)) != len(self.subnet_ids):
            found.append(("subnet_ids", "subnet ids must be unique"))
        return found


@dataclass(frozen=True)
class TrainingConfig:
    """Workload W4: multi-node LLM training on Trainium with AWS Batch."""

    enabled: bool = setting(True, doc="false: the stack is not synthesized in this environment.")
    # ---- compute ----------------------------------------------------------
    instance_type: Literal["trn1.32xlarge", "trn1n.32xlarge"] = setting(
        "trn1.32xlarge", doc="trn1n.32xlarge doubles EFA bandwidth (16 interfaces, 1,600 Gbps)."
    )
    node_count: int = setting(4, ge=1, le=256, doc="Nodes of a training job unless a submission overrides it.")
    max_nodes: int | None = setting(
        None, ge=1, le=256, doc="Compute environment capacity in nodes (max vCPUs = nodes x 128). None: node_count."
    )
    availability_zone: str | None = setting(
        None,
        pattern=AZ_PATTERN,
        doc="The one AZ of the cluster, a name (us-west-2d) or an AZ ID (usw2-az4) offering the instance type. "
        "Required where account and region are pinned; None in an environment-agnostic synth: the "
        "AvailabilityZoneId parameter, given at deploy.",
    )
    ami_id: str | None = setting(
        None,
        pattern=AMI_PATTERN,
        doc="The ECS AL2023 Neuron AMI of the region, pinned (a new one is a deliberate change). Required where "
        "account and region are pinned; None in an environment-agnostic synth: the AmiId parameter, given at deploy.",
    )
    update_timeout_minutes: int | None = setting(
        None, ge=1, le=7200,
        doc="How long an infrastructure update waits for running jobs. None: the longest job timeout.",
    )
    evaluation_instance_type: Literal["trn1.2xlarge", "trn1.32xlarge"] = setting(
        "trn1.2xlarge", doc="Evaluation and batch inference hosts (their own compute environment and queue)."
    )
    evaluation_max_instances: int = setting(2, ge=1, le=64, doc="Evaluation/inference hosts at most.")
    capacity_reservation_id: str | None = setting(
        None, pattern=r"cr-[0-9a-f]{17}", doc="Launch into this targeted On-Demand Capacity Reservation."
    )
    root_volume_gib: int = setting(200, ge=30, le=16384, doc="Encrypted gp3 root volume (container images live here).")
    # ---- network ----------------------------------------------------------
    vpc_cidr: str = setting("10.64.0.0/16", pattern=r"\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])", doc="New VPC only.")
    egress: Literal["vpc_endpoints", "nat_gateway"] = setting(
        "nat_gateway",
        doc="nat_gateway: private subnets with a NAT gateway (internet access: the EFA installer at boot, pip, "
        "Hugging Face) and the S3 gateway endpoint; vpc_endpoints: isolated subnets reaching ECR, S3, Logs, ECS, "
        "STS, CloudWatch and EC2 privately, no internet (needs efa_software = \"in-ami\"). With existing_vpc "
        "nothing is created: say which of the two its subnets have.",
    )
    efa_software: Literal["install-at-boot", "in-ami"] = setting(
        "install-at-boot",
        doc="install-at-boot: each host installs aws-efa-installer at boot unless its EFA devices exist (needs "
        "egress = \"nat_gateway\"); in-ami: the AMI carries the EFA driver, nothing is downloaded "
        "(docs/training.md, What the first deploy checks on a host).",
    )
    existing_vpc: ExistingVpcConfig | None = setting(None, doc="None: a new VPC is created.")
    log_retention_days: int = setting(
        30,
        choices=(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653),
        doc="Flow logs, job logs and pipeline logs (CloudWatch Logs retention values).",
    )
    # ---- fair-share queue -------------------------------------------------
    shares: dict[str, float] = setting(
        default_factory=lambda: {"training": 1.0},
        doc="share identifier (letters, digits) -> weight factor (0.0001-999.9999; lower gets more of the cluster).",
    )
    pipeline_share: str = setting("training", doc="Share the Step Functions pipeline submits under.")
    share_decay_seconds: int = setting(3600, ge=0, le=604800, doc="Time window of past usage fair share weighs.")
    compute_reservation: int = setting(
        0, ge=0, le=99, doc="Percent of capacity kept back for share identifiers that are not active yet."
    )
    runnable_time_limit_seconds: int = setting(
        3600, ge=600, le=86400, doc="Jobs RUNNABLE longer than this (no capacity, misconfiguration) are cancelled."
    )
    # ---- jobs ---------------------------------------------------------------
    runtime: str = runtime_setting("training")
    image_uri: str | None = setting(
        None, doc="Training image. None: built at deploy from runtime_profiles/training/<runtime>/Dockerfile."
    )
    neuron_cc_flags: str = setting(W4_NEURON_CC_FLAGS, doc="NEURON_CC_FLAGS of every job (validated here).")
    retry_attempts: int = setting(3, ge=1, le=10, doc="Batch attempts of a job (1 = no retry).")
    retryable_exit_code: int = setting(
        75,
        ge=3,
        le=125,
        doc="Exit code of a failure another host can fix (pre-flight, barrier, rendezvous, lost peer, EFA); "
        "Batch retries it. Not 1 (any crash), not 2 (configuration error), not 126+ (shell and signal codes).",
    )
    job_timeout_seconds: int = setting(172800, ge=60, doc="Per attempt; a hung collective cannot hold nodes forever.")
    compile_timeout_seconds: int = setting(21600, ge=60, doc="Per attempt of the multi-node ahead-of-time compile.")
    single_node_timeout_seconds: int = setting(21600, ge=60, doc="Evaluation and batch inference jobs.")
    rendezvous_timeout_seconds: int = setting(300, ge=30, le=3600, doc="torchrun's static rendezvous.")
    barrier_timeout_seconds: int = setting(900, ge=60, le=7200, doc="How long the main node waits for every node's pre-flight.")
    intra_node_busbw_floor_gbps: float = setting(
        0.0, ge=0, doc="nccom-test all-reduce bus bandwidth a node must reach (0: off; set from a healthy node)."
    )
    cross_node_busbw_floor_gbps: float = setting(
        0.0, ge=0, doc="Cross-node all-reduce bus bandwidth the cluster must reach (0: off; set from a healthy run)."
    )
    hang_alarm_minutes: int = setting(
        60, ge=10, le=1440,
        doc="A run whose program reported a step and then completed none for this long is stopped on all its "
        "nodes and retried on new hosts (the main node's watchdog); the stopped-runs alarm counts it. "
        "Programs that never report progress are never stopped by it (docs/training.md, Hangs).",
    )
    checkpoint_every_steps: int = setting(500, ge=1, doc="Steps between checkpoints (a late failure costs less).")
    compile_steps: int = setting(5, ge=1, le=100, doc="Steps neuron_parallel_compile traces (4-5 suffice, W4).")
    shared_memory_gib: int = setting(64, ge=1, le=256, doc="/dev/shm of each container (data loader workers).")
    container_memory_gib: int = setting(
        480, ge=16, le=500, doc="Memory each job reserves (512 GiB instances; ECS keeps some back)."
    )
    pipeline_timeout_hours: int | None = setting(
        None, ge=1, le=MAX_PIPELINE_HOURS,
        doc="Step Functions execution limit. None: the worst case, attempts x (compile + training + 2 x single-node).",
    )

    def problems(self) -> list[tuple[Any, ...]]:
        # (key, message) or (key, message, keys whose values caused it): config/typed.py
        found: list[tuple[Any, ...]] = []
        if self.image_uri is not None and image_uri_problem(self.image_uri):
            found.append(("image_uri", str(image_uri_problem(self.image_uri))))
        for problem in neuron_cc_flag_problems(self.neuron_cc_flags, allowed_targets=TRAINIUM_TARGETS):
            found.append(("neuron_cc_flags", f"got {self.neuron_cc_flags!r}: {problem}"))
        if "--cache_dir" in parse_neuron_cc_flags(self.neuron_cc_flags)[0]:
            found.append(("neuron_cc_flags", f"got {self.neuron_cc_flags!r}: --cache_dir overrides the S3 compile cache "
                          "(NEURON_COMPILE_CACHE_URL) the job definition sets, so every job would recompile; "
                          "allowed: flags without --cache_dir"))
        # Ranges of share_decay_seconds and compute_reservation are checked by setting().
        found.extend(fair_share_problems(self.shares, 0, 0))
        if self.shares and self.pipeline_share not in self.shares:
            found.append(("pipeline_share", f"got {self.pipeline_share!r}, allowed: {', '.join(map(repr, self.shares))}"))
        if self.max_nodes is not None and self.max_nodes < self.node_count:
            found.append(("max_nodes", f"got {self.max_nodes}, must be at least node_count ({self.node_count})"))
        longest_job = max(self.job_timeout_seconds, self.compile_timeout_seconds, self.single_node_timeout_seconds)
        if math.ceil(longest_job / 60) > 7200:
            found.append(("job_timeout_seconds", f"got {longest_job}, at most 432000 (5 days): a compute environment "
                          "update cannot wait longer than 7200 min, so a longer job could be stopped by a deploy"))
        elif self.update_timeout_minutes is not None and self.update_timeout_minutes < math.ceil(longest_job / 60):
            needed = math.ceil(longest_job / 60)
            found.append(("update_timeout_minutes", f"got {self.update_timeout_minutes}, below the longest job timeout "
                          f"({needed} min): a deploy that updates the hosts would stop running jobs; "
                          f"allowed: {needed} to 7200"))
        worst = self.worst_case_hours
        if self.pipeline_timeout_hours is not None and self.pipeline_timeout_hours < worst:
            found.append(("pipeline_timeout_hours", f"got {self.pipeline_timeout_hours}, below the worst case of {worst} h "
                          "(retry_attempts x (compile + training + evaluation + batch inference timeouts)); "
                          f"allowed: {worst} to {MAX_PIPELINE_HOURS}"))
        if worst > MAX_PIPELINE_HOURS:
            found.append(("retry_attempts", f"the pipeline's worst case ({worst} h) exceeds Step Functions' one year"))
        addresses = self.capacity_nodes * (self.efa_interfaces + 1) + self.evaluation_max_instances
        if self.existing_vpc is None and addresses > CLUSTER_SUBNET_ADDRESSES:
            found.append(("max_nodes", f"got {self.capacity_nodes} nodes: each takes {self.efa_interfaces + 1} addresses "
                          f"(one per EFA interface and one for its container), {addresses} in all, more than the "
                          f"cluster subnet's {CLUSTER_SUBNET_ADDRESSES}; allowed: at most "
                          f"{(CLUSTER_SUBNET_ADDRESSES - self.evaluation_max_instances) // (self.efa_interfaces + 1)}"))
        if self.existing_vpc is None and int(self.vpc_cidr.rsplit("/", 1)[1]) > 19:
            found.append(("vpc_cidr", f"got {self.vpc_cidr!r}, allowed: a /16 to /19 (the cluster subnet is a /20 and "
                          "the NAT option adds a /24)"))
        if self.efa_software == "install-at-boot" and self.egress != "nat_gateway":
            found.append(("efa_software", f"got {self.efa_software!r} with egress {self.egress!r}: the hosts download "
                          "aws-efa-installer from efa-installer.amazonaws.com (and its kernel module's OS packages), "
                          "which isolated subnets cannot reach; allowed: egress = \"nat_gateway\", or an AMI that "
                          "carries EFA with efa_software = \"in-ami\"", ("egress",)))
        if self.shared_memory_gib >= self.container_memory_gib:
            found.append(("shared_memory_gib", f"got {self.shared_memory_gib}, must be below container_memory_gib"))
        return found

    @property
    def profile(self) -> RuntimeProfile:
        """The runtime profile the training image is built on (``runtime``)."""
        return profile_for("training", self.runtime)

    @property
    def capacity_nodes(self) -> int:
        return self.max_nodes if self.max_nodes is not None else self.node_count

    @property
    def efa_interfaces(self) -> int:
        return 16 if self.instance_type == "trn1n.32xlarge" else 8

    @property
    def update_timeout(self) -> int:
        """Minutes an infrastructure update waits: configured, or the longest job timeout."""
        if self.update_timeout_minutes is not None:
            return self.update_timeout_minutes
        longest = max(self.job_timeout_seconds, self.compile_timeout_seconds, self.single_node_timeout_seconds)
        return min(7200, math.ceil(longest / 60))

    @property
    def worst_case_hours(self) -> int:
        seconds = self.retry_attempts * (
            self.compile_timeout_seconds + self.job_timeout_seconds + 2 * self.single_node_timeout_seconds
        )
        return math.ceil(seconds / 3600)

    @property
    def pipeline_timeout(self) -> int:
        """Hours an execution may run: configured, or the worst case."""
        return self.pipeline_timeout_hours if self.pipeline_timeout_hours is not None else self.worst_case_hours


def placement_problems(training: TrainingConfig, *, pinned: bool) -> list[tuple[str, str]]:
    """An environment that pins account and region must pin the cluster's AZ and AMI in its config.

    An environment-agnostic one may leave them out: the stack then asks for them as
    CloudFormation parameters without defaults (docs/training.md, "Before you deploy").
    Keys are the platform's (``training.<key>``).
    """
    if not training.enabled or not pinned:
        return []
    found = []
    if training.availability_zone is None:
        found.append(("training.availability_zone", "required where account and region are set: trn1 is offered in "
                      "some AZs only; allowed: an AZ name (us-west-2d) or ID (usw2-az4) listed by "
                      f"`{FIND_AZ}`", _WHY_REQUIRED))
    if training.ami_id is None:
        found.append(("training.ami_id", "required where account and region are set: pin the ECS AL2023 Neuron AMI; "
                      f"allowed: an ami- id, find it with `{FIND_AMI}`", _WHY_REQUIRED))
    return found


# Nobody set the missing key; switching training on in a pinned environment made it required.
_WHY_REQUIRED = ("training.enabled", "region")
