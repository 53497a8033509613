"""The checks: each reads the account (read-only, through :mod:`ml_tools.preflight.policy`'s guarded
clients) and returns rows: what the environment needs, what the account has, and how to fix a gap."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any, Callable

from ml_tools.preflight import needs as wanted

PASS, FAIL, WARN, CANNOT, INFO = "pass", "FAIL", "warn", "cannot check", "info"
# The highest `requiresBootstrapStackVersion` in this app's cloud assembly (aws-cdk-lib 2.275.0's
# DefaultStackSynthesizer: 6 for the deploy role, 8 for the lookup role that `cdk diff` and
# `make drift` use); tests/tools/test_preflight.py synthesizes the app and fails when it changes.
REQUIRED_BOOTSTRAP_VERSION = 8
# The ECS-optimized Amazon Linux 2023 Neuron AMI (docs/training.md) is published by Amazon as
# al2023-ami-ecs-neuron-hvm-<version>-kernel-<kernel>-x86_64.
NEURON_AMI_NAME = re.compile(r"al2023-ami-ecs-neuron-hvm-")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
           "UnrecognizedClientException"}


@dataclass(frozen=True)
class Row:
    check: str
    needs: str
    has: str
    status: str
    fix: str = ""


@dataclass
class Context:
    """What every check reads: the environment, the region, clients and a Docker probe."""

    cfg: Any
    region: str
    account: str
    client: Callable[..., Any]  # (service, region=None) -> a guarded boto3 client
    docker: Callable[[], tuple[bool, str]]
    qualifier: str = "hnb659fds"


def cannot(check: str, needs: str, err: BaseException) -> Row:
    """A check AWS would not answer: never a pass."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        why = f"{code}: {error.get('Message', '')}".strip(": ")
        fix = (f"allow {_action(err)} (the preflight policy: python -m ml_tools preflight --print-policy)"
               if code in _DENIED else "")
        return Row(check, needs, why, CANNOT, fix)
    if isinstance(err, BotoCoreError):
        return Row(check, needs, str(err), CANNOT)
    raise err


def _action(err: Any) -> str:
    from ml_tools.preflight.policy import CALLS

    operation = getattr(err, "operation_name", "")
    return next((action for (_, op), action in CALLS.items() if op == operation), operation or "the call")


def _code(err: Any) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


# ---------------------------------------------------------------- account and region


def identity(ctx: Context) -> list[Row]:
    cfg = ctx.cfg
    pin = f"the account pinned in config/environments/{cfg.environment}.toml"
    rows = [Row("account", cfg.account or "any (the environment pins none)", ctx.account,
                PASS if cfg.account in (None, ctx.account) else FAIL,
                "" if cfg.account in (None, ctx.account) else
                f"use credentials of account {cfg.account} (AWS_PROFILE, `aws sso login`), or change {pin}")]
    rows.append(Row("region", cfg.region or "any (the environment pins none)", ctx.region,
                    PASS if cfg.region in (None, ctx.region) else FAIL,
                    "" if cfg.region in (None, ctx.region) else f"run with --region {cfg.region} (the pinned one)"))
    return rows


def bootstrap(ctx: Context) -> list[Row]:
    name = f"/cdk-bootstrap/{ctx.qualifier}/version"
    needs = f"CDK bootstrap version >= {REQUIRED_BOOTSTRAP_VERSION} (SSM {name})"
    fix = f"npx cdk bootstrap aws://{ctx.account}/{ctx.region}"
    try:
        value = ctx.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    except Exception as err:
        if _code(err) == "ParameterNotFound":
            return [Row("CDK bootstrap", needs, "not bootstrapped (no version parameter)", FAIL, fix)]
        return [cannot("CDK bootstrap", needs, err)]
    ok = value.isdigit() and int(value) >= REQUIRED_BOOTSTRAP_VERSION
    return [Row("CDK bootstrap", needs, f"version {value}", PASS if ok else FAIL, "" if ok else fix + " (upgrades it)")]


# ---------------------------------------------------------------- quotas


def sagemaker_quotas(ctx: Context) -> list[Row]:
    endpoint_needs = [n for n in wanted.instance_needs(ctx.cfg) if n.sagemaker and n.count]
    if not endpoint_needs:
        return []
    quotas = ctx.client("service-quotas")
    try:
        applied = _quotas_by_name(quotas, "list_service_quotas")
    except Exception as err:
        return [cannot(f"quota {n.instance_type} for endpoint usage", str(n.count), err) for n in endpoint_needs]
    # ListServiceQuotas leaves out a quota without an applied value (Service Quotas API reference): for those the
    # AWS default is what the account has, and a default of 0 must fail, not show as "cannot check".
    defaults: dict[str, dict] | BaseException | None = None
    rows = []
    headroom = wanted.update_headroom(ctx.cfg)
    for need in endpoint_needs:
        name = f"{need.instance_type} for endpoint usage"
        extra = headroom.get(need.instance_type, 0)
        needs = (f"{need.count}{f' (+{extra} during an update)' if extra else ''}: "
                 + "; ".join(u.split(": ", 1)[1] for u in need.uses))
        quota, shown = applied.get(name), "{}"
        if quota is None:
            if defaults is None:
                try:
                    defaults = _quotas_by_name(quotas, "list_aws_default_service_quotas")
                except Exception as err:
                    defaults = err
            if isinstance(defaults, BaseException):
                rows.append(cannot(f"quota {name}", needs, defaults))
                continue
            quota, shown = defaults.get(name), "default {}, never raised"
        if quota is None:
            rows.append(Row(f"quota {name}", needs, f"neither an applied nor a default value listed in {ctx.region}",
                            CANNOT, f"Service Quotas console > Amazon SageMaker > '{name}' (is {need.instance_type} "
                            f"offered for endpoints in {ctx.region}?)"))
            continue
        value = int(quota["Value"])
        fix = (f"aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code "
               f"{quota['QuotaCode']} --desired-value {need.count + extra} --region {ctx.region}")
        if value < need.count:
            rows.append(Row(f"quota {name}", needs, shown.format(value), FAIL, fix))
        elif value < need.count + extra:  # the first deploy fits; an update at the ceiling would not
            rows.append(Row(f"quota {name}", needs,
                            f"{shown.format(value)}: enough to deploy, not to update at the ceiling", WARN, fix))
        else:
            rows.append(Row(f"quota {name}", needs, shown.format(value), PASS))
    return rows


def _quotas_by_name(client: Any, operation: str) -> dict[str, dict]:
    pages = client.get_paginator(operation).paginate(ServiceCode="sagemaker")
    return {q["QuotaName"]: q for page in pages for q in page["Quotas"]}


def ec2_vcpu_quotas(ctx: Context) -> list[Row]:
    rows = []
    for family, (vcpus, uses) in sorted(wanted.vcpu_needs(ctx.cfg).items()):
        code, name = wanted.EC2_VCPU_QUOTAS[family]
        check, needs = f"quota {name} (vCPUs)", f"{vcpus} ({' + '.join(uses)}, AWS Batch ceilings)"
        quotas, shown = ctx.client("service-quotas"), "{}"
        try:
            try:
                value = int(quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
            except Exception as err:
                if _code(err) != "NoSuchResourceException":  # no applied value: the AWS default applies
                    raise
                value = int(quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
                shown = "default {}, never raised"
        except Exception as err:
            rows.append(cannot(check, needs, err))
            continue
        fix = (f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
               f"--desired-value {vcpus} --region {ctx.region}")
        rows.append(Row(check, needs, shown.format(value), PASS if value >= vcpus else FAIL,
                        "" if value >= vcpus else fix))
    return rows


# ---------------------------------------------------------------- instance offerings, AMI


def offerings(ctx: Context) -> list[Row]:
    rows = []
    ec2 = ctx.client("ec2")
    tr, sd = ctx.cfg.training, ctx.cfg.stable_diffusion
    if tr.enabled:
        types = sorted({tr.instance_type, tr.evaluation_instance_type})
        try:
            zones, where = _training_zones(ec2, tr)
        except Exception as err:
            return [cannot(f"{t} offered", "the training cluster's zone", err) for t in types]
        for instance_type in types:
            rows.append(_offered(ec2, instance_type, zones, where, every=True))
    if sd.enabled and sd.compile.enabled:
        try:
            listed = ec2.describe_availability_zones(
                Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}])["AvailabilityZones"]
        except Exception as err:
            return rows + [cannot(f"{sd.compile.instance_type} offered", "a zone of the compile VPC", err)]
        first_two = sorted(listed, key=lambda z: z["ZoneName"])[:2]  # the compile VPC takes two AZs (max_azs=2)
        zones = [z["ZoneId"] for z in first_two]
        rows.append(_offered(ec2, sd.compile.instance_type, zones, "the compile VPC's zones", every=False))
    return rows


def _training_zones(ec2: Any, tr: Any) -> tuple[list[str], str]:
    if tr.existing_vpc is not None:
        subnets = ec2.describe_subnets(SubnetIds=list(tr.existing_vpc.subnet_ids))["Subnets"]
        return sorted({s["AvailabilityZoneId"] for s in subnets}), "the zones of training.existing_vpc.subnet_ids"
    if tr.availability_zone:
        return [tr.availability_zone], f"training.availability_zone {tr.availability_zone}"
    return [], "the region (training.availability_zone is chosen at deploy)"


def _offered(ec2: Any, instance_type: str, zones: list[str], where: str, *, every: bool) -> Row:
    check = f"{instance_type} offered"
    needs = f"in {'every one' if every else 'one'} of {where}" if zones else f"in {where}"
    try:
        if not zones:
            found = ec2.describe_instance_type_offerings(
                LocationType="region", Filters=[{"Name": "instance-type", "Values": [instance_type]}])
            ok = bool(found["InstanceTypeOfferings"])
            return Row(check, needs, "offered" if ok else "not offered in this region", PASS if ok else FAIL,
                       "" if ok else "choose a region that offers it")
        location = "availability-zone-id" if all(re.fullmatch(r"[a-z]{2,4}\d-az\d+", z) for z in zones) \
            else "availability-zone"
        found = ec2.describe_instance_type_offerings(LocationType=location, Filters=[
            {"Name": "instance-type", "Values": [instance_type]}, {"Name": "location", "Values": zones}])
    except Exception as err:
        return cannot(check, needs, err)
    offered = sorted({o["Location"] for o in found["InstanceTypeOfferings"]})
    ok = set(offered) == set(zones) if every else bool(offered)
    from config.training import FIND_AZ

    return Row(check, f"{needs} ({', '.join(zones)})", f"offered in {', '.join(offered) or 'none of them'}",
               PASS if ok else FAIL, "" if ok else "pick a zone that offers it: " +
               FIND_AZ.replace("trn1.32xlarge", instance_type).replace("<region>", "REGION"))


def neuron_ami(ctx: Context) -> list[Row]:
    from config.training import FIND_AMI

    tr = ctx.cfg.training
    if not tr.enabled:
        return []
    needs = "the ECS AL2023 Neuron AMI (training.ami_id)"
    fix = FIND_AMI.replace("<region>", ctx.region)
    if tr.ami_id is None:
        return [Row("training AMI", needs, "none pinned (the AmiId parameter is given at deploy)", CANNOT,
                    f"pin training.ami_id to the value of: {fix}")]
    try:
        images = ctx.client("ec2").describe_images(ImageIds=[tr.ami_id])["Images"]
    except Exception as err:
        if _code(err).startswith("InvalidAMIID"):
            images = []
        else:
            return [cannot("training AMI", needs, err)]
    if not images:
        return [Row("training AMI", needs, f"{tr.ami_id} does not exist in {ctx.region}", FAIL,
                    f"set training.ami_id to the value of: {fix}")]
    image = images[0]
    name, owner = image.get("Name", ""), image.get("ImageOwnerAlias", image.get("OwnerId", ""))
    ok = bool(NEURON_AMI_NAME.match(name)) and owner == "amazon"
    return [Row("training AMI", needs, f"{tr.ami_id}: {name} (owner {owner})", PASS if ok else FAIL,
                "" if ok else f"set training.ami_id to the value of: {fix}")]


# ---------------------------------------------------------------- images, staged data, Docker


def images(ctx: Context) -> list[Row]:
    from ml_constructs.sagemaker.images import dlc_accounts

    rows = []
    for image in wanted.image_needs(ctx.cfg, ctx.region, dlc_accounts().get(ctx.region)):
        check = image.what
        if image.account is None:
            rows.append(Row(check, image.reference, "not in an ECR registry: the Docker build pulls it", CANNOT,
                            f"docker pull {image.reference}"))
            continue
        ids = {"imageDigest": image.digest} if image.digest else {"imageTag": image.tag}
        try:
            found = ctx.client("ecr", image.region).batch_get_image(
                registryId=image.account, repositoryName=image.repository, imageIds=[ids],
                acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json",
                                    "application/vnd.oci.image.manifest.v1+json",
                                    "application/vnd.oci.image.index.v1+json",
                                    "application/vnd.docker.distribution.manifest.list.v2+json"])
        except Exception as err:
            if _code(err) == "RepositoryNotFoundException":
                rows.append(Row(check, image.reference, "no such repository", FAIL, "check the image URI"))
            else:
                rows.append(cannot(check, image.reference, err))
            continue
        if found.get("images"):
            rows.append(Row(check, image.reference, "exists, pullable", PASS))
        else:
            reason = "; ".join(f.get("failureCode", "") for f in found.get("failures", [])) or "not found"
            rows.append(Row(check, image.reference, reason, FAIL,
                            "use a tag the registry has (runtime profile tags: docs/runtime-profiles.md)"))
    return rows


def manifests(ctx: Context) -> list[Row]:
    needed = wanted.manifest_needs(ctx.cfg)
    if not needed:
        return []
    stack = ctx.cfg.stack_name("Storage")
    deploy = f"npx cdk deploy -c env={ctx.cfg.environment} {stack}"
    outputs = None
    if any(m.output for m in needed):
        try:
            described = ctx.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        except Exception as err:
            if not (_code(err) == "ValidationError" and "does not exist" in str(err)):
                return [cannot(m.what, m.key, err) for m in needed]
    rows = []
    for manifest in needed:
        if manifest.output and outputs is None:
            rows.append(Row(manifest.what, f"{manifest.output}{manifest.key}", f"stack {stack} is not deployed", FAIL,
                            f"{deploy}, then {manifest.fix}"))
            continue
        url = (outputs[manifest.output] + manifest.key) if manifest.output else manifest.key
        bucket, _, key = url.removeprefix("s3://").partition("/")
        try:
            listed = ctx.client("s3").list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except Exception as err:
            rows.append(cannot(manifest.what, url, err))
            continue
        ok = any(o["Key"] == key for o in listed.get("Contents", []))
        rows.append(Row(manifest.what, url, "present" if ok else "missing", PASS if ok else FAIL,
                        "" if ok else manifest.fix))
    return rows


def docker_info() -> tuple[bool, str]:
    """Whether a Docker engine answers `docker info` (the CDK builds image assets with it)."""
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"docker info: {err}"
    if done.returncode != 0:
        return False, (done.stderr.strip().splitlines() or ["docker info failed"])[-1]
    return True, f"engine {done.stdout.strip()}"


def docker(ctx: Context) -> list[Row]:
    built = wanted.builds_images(ctx.cfg)
    if not built:
        return []
    ok, detail = ctx.docker()
    return [Row("Docker engine", f"builds the {' and the '.join(built)} at deploy", detail,
                PASS if ok else FAIL, "" if ok else "start Docker (docs/first-deploy.md), or set image_uri "
                "to an image you pushed")]


def cost(ctx: Context) -> list[Row]:
    from ml_tools.cost import estimate

    result = estimate(ctx.cfg)
    return [Row("hourly cost (estimate)", "", f"${result.floor:,.2f}/h at the floor, ${result.ceiling:,.2f}/h at the "
                f"ceiling ({result.prices.region} list prices of {result.prices.as_of})", INFO,
                f"details: python -m ml_tools cost --env {ctx.cfg.environment}")]


CHECKS: tuple[Callable[[Context], list[Row]], ...] = (
    identity, bootstrap, sagemaker_quotas, ec2_vcpu_quotas, offerings, neuron_ami, images, manifests, docker, cost)
