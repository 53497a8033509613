"""NeuronCompilation: compile a model once per content hash, as part of a deploy."""
from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ml_constructs import nag
from ml_constructs.neuron_compile.compute import CompileQueue, compile_vpc
from ml_constructs.neuron_compile.provider import CompileProvider
from ml_constructs.neuron_compile.rules import (
    COMPILE_INSTANCES,
    DEFAULT_COMPONENT_ARGS,
    DTYPES,
    S3_PREFIX,
    compiler_args_problems,
    image_problems,
    model_problems,
    pairing_problems,
    shape_problems,
)
from ml_constructs.packaging import ModelPackageAsset
from ml_constructs.sagemaker.images import dlc_registry_account
from ml_constructs.storage import ArtifactLocation

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCRIPT_DIR = ROOT / "model_packages" / "stable_diffusion_compile"
ENTRYPOINT = (Path(__file__).parent / "job_entrypoint.sh").read_text(encoding="utf-8")
# Deep Learning Containers whose entrypoint joins the command's arguments with spaces and
# parses them again: DJL Serving's (bash `eval "$@"`) and the SageMaker inference images'
# (`shlex.split(" ".join(argv))` in Python). The script must reach `bash -c` as one quoted word.
REJOINING_ENTRYPOINT_REPOSITORIES = ("djl-inference", "pytorch-inference-neuronx",
                                     "huggingface-pytorch-inference-neuronx")
DEFAULT_COMPILER_ARGS: Mapping[str, str] = DEFAULT_COMPONENT_ARGS
EXPORTERS = ("torch-neuronx", "optimum-neuron")
DEFAULT_TIMEOUT = cdk.Duration.minutes(50)
DEFAULT_JOB_TIMEOUT = cdk.Duration.hours(3)
DEFAULT_QUERY_INTERVAL = cdk.Duration.minutes(1)
HASH_LENGTH = 32  # hex characters: 128 bits name the output prefix and the physical id


@dataclass(frozen=True)
class CompileInputs:
    """Everything that decides the compiled bytes; all of it goes into the content hash."""

    model_id: str
    revision: str
    height: int
    width: int
    dtype: str
    compiler_args: str
    exporter: str
    image: str
    instance_type: str
    script_sha256: str

    def content_hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


class NeuronCompilation(Construct):
    """Ahead-of-time Neuron compilation on AWS Batch, run by a custom resource, cached by content.

    Props (keyword-only)
      artifacts: where compiled artifacts go (the storage's ``neuron_artifacts``
        location); each compile writes only to ``<prefix><hash>/``.
      model_id: Hugging Face hub id, or ``s3://bucket/prefix/`` of private weights
        (read access to that prefix is granted; pass ``weights_key`` if it is KMS encrypted).
      weights: weights staged in this project's storage (an ArtifactLocation, e.g. a child of
        ``model_weights``); replaces ``model_id`` (read access is granted on it).
      revision, height, width, dtype: the compile inputs. compiler_args: neuronx-cc flags per
        component ({text_encoder, unet, vae_decoder, vae_post_quant_conv}: flags), default AWS's
        samples' (``--model-type=unet-inference`` for the UNet and VAE decoder only); ``""`` with
        the optimum-neuron exporter.
      exporter: ``torch-neuronx`` (compiled_model/*.pt for DJL, default) or ``optimum-neuron``
        (an optimum-neuron pipeline with its serving code, for the Hugging Face Neuron image).
      serving_image: the image that will load the artifacts. Default compile image.
      image: the compile image, ``repository:tag`` in the region's AWS Deep Learning
        Containers registry or a full URI. Default: ``serving_image``. Its tag's Neuron SDK
        (``sdkX.Y.Z``) must equal the serving image's, or synth fails.
      instance_type: ``inf2.8xlarge`` (default, 128 GiB host memory) or ``trn1.2xlarge`` (32 GiB).
      script_dir: the compile package (``compile.py``); it installs nothing over the image.
        Default: ``model_packages/stable_diffusion_compile/``.
      vpc / vpc_subnets: where the compile host runs (needs a route to the Hugging Face
        hub for hub ids). Default: a small VPC is created.
      timeout: how long a deploy waits (5-55 min; CloudFormation allows a custom resource
        one hour). Default 50 min. job_timeout: Batch kills the job after this (default 3 h).
      wait_for_completion: ``False`` starts the compile and completes at once with the
        expected URL (for compiles longer than ``timeout``, with nothing consuming the artifacts
        yet); a later deploy with ``True`` adopts the running job or finds the manifest.
        Default ``True``.
      query_interval: how often the job is polled (10-300 s). Default 1 min.
      root_volume_gib: the compile host's root volume (64-16384). Default 200.

    Default settings: SD 2.1 base, 512x512, bf16, ``--target=inf2 --model-type=unet-inference``,
    inf2.8xlarge on demand, scaled from zero; a deploy waits up to 50 min, then fails with the
    job id, its run time and what to do next while the job keeps running (the next deploy adopts it
    or finds its output); jobs and artifacts are kept when the resource is deleted.

    Creates: ``queue`` (:class:`CompileQueue`: compute environment, launch template, job
    queue), ``job_definition`` with ``job_role`` (reads the script object and the weights
    prefix, writes its own output prefix only), ``provider`` (:class:`CompileProvider`)
    and ``resource`` (``Custom::NeuronCompilation``, physical id = the content hash).

    Attributes: ``content_hash``, ``artifacts_url`` (the resource's ``ArtifactsUrl``,
    ``s3://<bucket>/<prefix><hash>/``, a token: depending on it orders the consumer after
    the compile), ``expected_artifacts_url`` (the same URL, known without waiting).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        artifacts: ArtifactLocation,
        serving_image: str,
        model_id: str = "stabilityai/stable-diffusion-2-1-base",
        revision: str | None = None,
        height: int = 512,
        width: int = 512,
        dtype: str = "bf16",
        compiler_args: str | Mapping[str, str] = DEFAULT_COMPILER_ARGS,
        exporter: str = "torch-neuronx",
        weights: ArtifactLocation | None = None,
        image: str | None = None,
        instance_type: str = "inf2.8xlarge",
        script_dir: Path | str = DEFAULT_SCRIPT_DIR,
        weights_key: kms.IKey | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        timeout: cdk.Duration = DEFAULT_TIMEOUT,
        job_timeout: cdk.Duration = DEFAULT_JOB_TIMEOUT,
        wait_for_completion: bool = True,
        query_interval: cdk.Duration = DEFAULT_QUERY_INTERVAL,
        root_volume_gib: int = 200,
    ) -> None:
        super().__init__(scope, construct_id)
        compile_image = image or serving_image
        per_component = isinstance(compiler_args, Mapping)
        flags = dict(compiler_args) if per_component else {"all": compiler_args}
        if exporter not in EXPORTERS:
            raise ValueError(f"Invalid NeuronCompilation props:\n  - exporter: got {exporter!r}; allowed: "
                             f"{', '.join(map(repr, EXPORTERS))}")
        if per_component and set(flags) != set(DEFAULT_COMPONENT_ARGS):
            raise ValueError(f"Invalid NeuronCompilation props:\n  - compiler_args: got keys {sorted(flags)}; "
                             f"allowed: exactly {sorted(DEFAULT_COMPONENT_ARGS)}")
        # One canonical string: the job's COMPILER_ARGS and the content hash.
        compiler_args_text = json.dumps(flags, sort_keys=True) if per_component else compiler_args
        if weights is not None:
            if revision:
                raise ValueError(f"Invalid NeuronCompilation props:\n  - revision: got {revision!r} with weights; "
                                 "staged weights are fixed by their prefix")
            model_id = weights.s3_url
        _validate(model_id="s3://staged/weights/" if weights is not None else model_id, revision=revision,
                  height=height, width=width, dtype=dtype,
                  compiler_args=flags, image=compile_image, serving_image=serving_image,
                  image_prop="image" if image else "serving_image",
                  instance_type=instance_type, timeout=timeout, job_timeout=job_timeout,
                  query_interval=query_interval, vpc_subnets=vpc_subnets, vpc=vpc,
                  weights_key=weights_key, root_volume_gib=root_volume_gib, script_dir=Path(script_dir))
        instance = COMPILE_INSTANCES[instance_type]

        self.script = ModelPackageAsset(self, "Script", source_dir=script_dir)
        hashed_model = f"project-weights:{weights.prefix}" if weights is not None else model_id
        self.inputs = CompileInputs(model_id=hashed_model, revision=revision or "", height=height, width=width,
                                    dtype=dtype, compiler_args=compiler_args_text, exporter=exporter,
                                    image=compile_image,
                                    instance_type=instance_type, script_sha256=self.script.sha256)
        self.content_hash = self.inputs.content_hash()
        self.output = artifacts.child(self.content_hash, "compiled Neuron artifacts")
        self.expected_artifacts_url = self.output.s3_url

        self.vpc = vpc or compile_vpc(self, "Vpc", log_retention=_RETENTION)
        self.queue = CompileQueue(self, "Queue", vpc=self.vpc, vpc_subnets=vpc_subnets, instance_type=instance_type,
                                  root_volume_gib=root_volume_gib, runnable_time_limit=cdk.Duration.minutes(30),
                                  job_timeout=job_timeout)

        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                                 description="Neuron compile job: reads its script and weights, writes its output prefix")
        self.script.grant_read(self.job_role)
        # compile.py lists its prefix to check the upload target before hours of work, and
        # deletes a stale manifest.json before re-uploading: list/get/put/delete, this prefix only.
        self.output.grant_read_write(self.job_role, allow_delete=True)
        if weights is not None:
            weights.grant_read(self.job_role)
        elif model_id.startswith("s3://"):
            bucket_name, prefix = S3_PREFIX.fullmatch(model_id).groups()
            weights_bucket = s3.Bucket.from_bucket_name(self, "WeightsBucket", bucket_name)
            ArtifactLocation(weights_bucket, prefix, "private weights", weights_key).grant_read(self.job_role)

        self.log_group = cdk.aws_logs.LogGroup(self, "JobLogs", retention=_RETENTION,
                                               removal_policy=cdk.RemovalPolicy.DESTROY)
        linux = batch.LinuxParameters(self, "LinuxParameters")
        linux.add_devices(*[
            batch.Device(host_path=f"/dev/neuron{i}", container_path=f"/dev/neuron{i}",
                         permissions=[batch.DevicePermission.READ, batch.DevicePermission.WRITE,
                                      batch.DevicePermission.MKNOD])
            for i in range(instance.neuron_devices)
        ])
        container = batch.EcsEc2ContainerDefinition(
            self,
            "Container",
            image=_container_image(self, compile_image),
            cpu=instance.vcpus,
            memory=cdk.Size.mebibytes(instance.job_memory_mib),
            command=job_command(compile_image),
            environment={"SCRIPT_BUCKET": self.script.bucket.bucket_name, "SCRIPT_KEY": self.script.object_key},
            job_role=self.job_role,
            linux_parameters=linux,
            # neuronx-cc keeps many intermediate files open at once.
            ulimits=[batch.Ulimit(name=batch.UlimitName.NOFILE, soft_limit=65535, hard_limit=65535)],
            logging=ecs.LogDriver.aws_logs(stream_prefix="neuron-compile", log_group=self.log_group),
        )
        nag.acknowledge_wildcard_resources(
            container.execution_role, ["*"],
            "ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are "
            "limited to the compile image's repository.")
        self.job_definition = batch.EcsJobDefinition(
            self,
            "JobDefinition",
            container=container,
            timeout=job_timeout,
            retry_attempts=2,
            retry_strategies=[
                # A lost host or a failed image pull is worth one more try; a failed compile is not.
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
                # Anything else (a compile that exited non-zero) is final: Batch retries when no rule matches.
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_exit_code="*")),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
            ],
        )

        self.provider = CompileProvider(self, "Provider", job_queue=self.queue.job_queue,
                                        job_definition=self.job_definition, output=self.output,
                                        total_timeout=timeout.plus(cdk.Duration.minutes(4)), query_interval=query_interval)
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type="Custom::NeuronCompilation",
            # Above the Provider's total timeout, so the Provider reports the failure, not CloudFormation.
            service_timeout=timeout.plus(cdk.Duration.minutes(5)),
            properties={
                "Hash": self.content_hash,
                "ArtifactsBucket": artifacts.bucket.bucket_name,
                "ArtifactsPrefix": self.output.prefix,
                "JobQueue": self.queue.job_queue.job_queue_arn,
                "JobDefinition": self.job_definition.job_definition_arn,
                "JobName": f"neuron-compile-{self.content_hash}",
                "LogGroup": self.log_group.log_group_name,
                "TimeoutSeconds": str(int(timeout.to_seconds())),
                "WaitForCompletion": "true" if wait_for_completion else "false",
                "Compile": {
                    "ModelId": model_id, "Revision": revision or "", "Height": str(height), "Width": str(width),
                    "Dtype": dtype, "CompilerArgs": compiler_args_text, "Exporter": exporter,
                },
            },
        )
        # The job runs minutes after submission, but only with its permissions in place and
        # with a route out of the private subnets (ECS registration, image pull, hub download).
        self.resource.node.add_dependency(self.job_role, container,
                                          self.queue.subnets.internet_connectivity_established)
        self.artifacts_url: str = self.resource.get_att_string("ArtifactsUrl")

    def grant_read_artifacts(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read (and list) this compile's artifacts, nothing else under the artifacts prefix."""
        return self.output.grant_read(grantee)


_RETENTION = cdk.aws_logs.RetentionDays.THREE_MONTHS


def compilation_props(cfg: Any) -> dict[str, Any]:
    """NeuronCompilation keyword arguments from a ``config.neuron_compile.NeuronCompileConfig``.

    For the stack that wires it: ``NeuronCompilation(self, "Compile", artifacts=...,
    serving_image=..., **compilation_props(cfg.stable_diffusion.compile))``.
    """
    return {
        "model_id": cfg.model_id,
        "revision": cfg.revision,
        "height": cfg.height,
        "width": cfg.width,
        "dtype": cfg.dtype,
        "compiler_args": cfg.compiler_args.as_dict(),
        "image": cfg.image,
        "instance_type": cfg.instance_type,
        "timeout": cdk.Duration.minutes(cfg.timeout_minutes),
        "job_timeout": cdk.Duration.minutes(cfg.job_timeout_minutes),
        "wait_for_completion": cfg.wait_for_completion,
    }


def job_command(image: str) -> list[str]:
    """The container command that runs the entrypoint script whatever the image's entrypoint does."""
    repository = image.rpartition(":")[0].rpartition("/")[2]
    rejoined = repository in REJOINING_ENTRYPOINT_REPOSITORIES
    return ["bash", "-c", shlex.quote(ENTRYPOINT) if rejoined else ENTRYPOINT]


def _container_image(scope: Construct, image: str) -> ecs.ContainerImage:
    """``repository:tag`` names the region's AWS Deep Learning Containers registry (account resolved as
    for the serving image: :func:`ml_constructs.sagemaker.images.dlc_registry_account`)."""
    repository, _, tag = image.rpartition(":")
    if "." in repository.split("/")[0]:  # a registry host: a full URI
        return ecs.ContainerImage.from_registry(image)
    stack = cdk.Stack.of(scope)
    # The serving images' resolution: the registries aws-cdk-lib's region facts lack, and the tag's regions.
    account = dlc_registry_account(stack, repository, tag)
    arn = stack.format_arn(service="ecr", account=account, resource="repository", resource_name=repository)
    repo = ecr.Repository.from_repository_attributes(scope, "DlcRepository", repository_arn=arn,
                                                     repository_name=repository)
    return ecs.ContainerImage.from_ecr_repository(repo, tag)


def _validate(*, model_id: str, revision: str | None, height: int, width: int, dtype: str,
              compiler_args: Mapping[str, str],
              image: str, serving_image: str, image_prop: str, instance_type: str, timeout: cdk.Duration,
              job_timeout: cdk.Duration, query_interval: cdk.Duration, vpc_subnets, vpc, weights_key,
              root_volume_gib: int, script_dir: Path) -> None:
    """Every problem at once, each naming the prop, the value and what is allowed."""
    found = model_problems(model_id, revision) + shape_problems("height", height) + shape_problems("width", width)
    problems = [f"{field}: {message}" for field, message in found]
    if dtype not in DTYPES:
        problems.append(f"dtype: got {dtype!r}; allowed: {', '.join(map(repr, DTYPES))}")
    problems += [f"compiler_args: {name}: {p}" if len(compiler_args) > 1 else f"compiler_args: {p}"
                 for name, flags in compiler_args.items() for p in compiler_args_problems(flags)]
    problems += [f"{image_prop}: {p}" for p in image_problems(image)]
    if not image_problems(image):
        problems += [f"{image_prop}: {p}" for p in pairing_problems(image, serving_image)]
    if instance_type not in COMPILE_INSTANCES:
        problems.append(f"instance_type: got {instance_type!r}; allowed: {', '.join(map(repr, COMPILE_INSTANCES))}")
    minutes = timeout.to_seconds() / 60
    if not 5 <= minutes <= 55:
        problems.append(f"timeout: got {minutes:g} min; allowed: 5 to 55 min (CloudFormation waits at most 1 hour "
                        "for a custom resource, and the Provider needs a few minutes beyond the deadline)")
    if job_timeout.to_seconds() < timeout.to_seconds():
        problems.append(f"job_timeout: got {job_timeout.to_seconds() / 60:g} min, below timeout ({minutes:g} min); "
                        "the job would be killed while the deploy still waits for it")
    if not 10 <= query_interval.to_seconds() <= 300:
        problems.append(f"query_interval: got {query_interval.to_seconds()} s; allowed: 10 to 300 s")
    if weights_key is not None and not model_id.startswith("s3://"):
        problems.append(f"weights_key: given, but model_id {model_id!r} is not an S3 prefix; the key only "
                        "decrypts private weights in S3")
    if not 64 <= root_volume_gib <= 16384:
        problems.append(f"root_volume_gib: got {root_volume_gib}; allowed: 64 to 16384 (the Neuron container "
                        "image, the weights and the compiler's work files share it)")
    if not (script_dir / "compile.py").is_file():
        problems.append(f"script_dir: {str(script_dir)!r} has no compile.py, which the compile job runs")
    if vpc_subnets is not None and vpc is None:
        problems.append("vpc_subnets: given without vpc; subnets only select within a vpc you pass")
    if problems:
        raise ValueError("Invalid NeuronCompilation props:\n  - " + "\n  - ".join(problems))
