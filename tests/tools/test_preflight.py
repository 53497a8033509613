"""`python -m ml_tools preflight` against moto accounts (STS, SSM, EC2, ECR, CloudFormation, S3).

moto 5.2.5 implements Service Quotas for the VPC service only (no SageMaker or EC2 quotas, no
ListServiceQuotas), so botocore's Stubber answers those calls with the service's real shapes.
moto's ECR ignores registryId: the Deep Learning Container repositories are created in the
moto account. What a user would notice: a quota, zone, AMI, image, manifest or Docker engine the
deploy needs that preflight passes, a check that cannot run shown as a pass, or a call its IAM
policy does not list.
"""
from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ml_tools.__main__ import main
from ml_tools.preflight import checks, environment_policy
from ml_tools.preflight.policy import CALLS, UnlistedCall, guard

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's account
GOOD_ZONE, BAD_ZONE = "use1-az6", "use1-az1"  # moto's offerings: trn1.32xlarge and trn1.2xlarge in az6, neither in az1
AMI_NAME = "al2023-ami-ecs-neuron-hvm-2023.0.20251201-kernel-6.1-x86_64"
BUCKET = "mlaccel-prod-storage-modelsbucket-abc123"
# The ceilings, plus what an update adds at the ceiling (rolling 25 % of 40; blue/green one more of one).
PROD_ENDPOINT_QUOTAS = {"ml.c5d.18xlarge": 40 + 10, "ml.g5.24xlarge": 2, "ml.inf2.xlarge": 2, "ml.p4de.24xlarge": 2}  # BLOOM-176B on current
PROD_VCPUS = {"L-1945791B": 32, "L-2C3B7624": 4 * 128 + 2 * 8}  # inf2.8xlarge compile host; trn1 training + eval
DLC = {("huggingface-pytorch-inference-neuronx", REGION): "2.8.0-transformers4.55.4-neuronx-py310-sdk2.26.0-ubuntu22.04",
       ("djl-inference", REGION): "0.36.0-lmi20.0.0-cu128",
       ("pytorch-training-neuronx", "us-west-2"): "2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04"}


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


class Account:
    """A moto account whose Service Quotas answers come from a Stubber; records every call made."""

    def __init__(self, endpoint_quotas: dict[str, float] | None = None, vcpu_quotas: dict[str, float] | None = None,
                 *, quota_codes: tuple[str, ...] = ("L-1945791B", "L-2C3B7624"), lists_sagemaker: bool = True,
                 endpoint_defaults: dict[str, float] | None = None, vcpu_defaults: dict[str, float] | None = None):
        """``endpoint_defaults``: the AWS defaults listed for SageMaker (asked for when a needed quota has no applied
        value); ``vcpu_defaults``: EC2 quotas without an applied value (GetServiceQuota answers
        NoSuchResourceException) and their AWS defaults."""
        self.session = boto3.session.Session(region_name=REGION)
        self.region_name = REGION
        self.calls: list[tuple[str, str]] = []
        self.quotas = self.session.client("service-quotas", region_name=REGION)
        self.stub = Stubber(self.quotas)
        listed = [{"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": f"L-{i:08X}",
                   "QuotaName": f"{name} for endpoint usage", "Value": float(value)}
                  for i, (name, value) in enumerate(sorted((endpoint_quotas or {}).items()))]
        if lists_sagemaker:
            self.stub.add_response("list_service_quotas", {"Quotas": listed}, {"ServiceCode": "sagemaker"})
        if endpoint_defaults is not None:
            self.stub.add_response("list_aws_default_service_quotas", {"Quotas": [
                {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": f"L-D{i:07X}",
                 "QuotaName": f"{name} for endpoint usage", "Value": float(value)}
                for i, (name, value) in enumerate(sorted(endpoint_defaults.items()))]}, {"ServiceCode": "sagemaker"})
        for code in quota_codes:
            if code in (vcpu_defaults or {}):
                self.stub.add_client_error("get_service_quota", "NoSuchResourceException",
                                           "The request failed because the specified service quota does not exist.",
                                           expected_params={"ServiceCode": "ec2", "QuotaCode": code})
                self.stub.add_response("get_aws_default_service_quota", {"Quota": {
                    "ServiceCode": "ec2", "QuotaCode": code, "Value": float(vcpu_defaults[code])}},
                    {"ServiceCode": "ec2", "QuotaCode": code})
                continue
            quota = {"ServiceCode": "ec2", "QuotaCode": code, "Value": float((vcpu_quotas or {}).get(code, 0))}
            self.stub.add_response("get_service_quota", {"Quota": quota}, {"ServiceCode": "ec2", "QuotaCode": code})
        self.stub.activate()

    def client(self, service: str, region_name: str | None = None):
        client = self.quotas if service == "service-quotas" else self.session.client(service, region_name=region_name)
        client.meta.events.register("before-parameter-build.*.*",
                                    lambda model, **_: self.calls.append((service, model.name)))
        return client

    def get_available_regions(self, service: str, partition_name: str = "aws"):
        return self.session.get_available_regions(service, partition_name)


def raised_quotas() -> Account:
    return Account(PROD_ENDPOINT_QUOTAS, PROD_VCPUS)


def put_resources(*, bootstrap: str = "30", ami_name: str = AMI_NAME, owner_alias: str = "amazon",
                  manifests: bool = True, images: bool = True) -> str:
    """Everything prod reads, in the moto account; returns the AMI id."""
    from moto.ec2.models import ec2_backends

    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value=bootstrap, Type="String")
    ec2 = boto3.client("ec2", region_name=REGION)
    ami = ec2.register_image(Name=ami_name, RootDeviceName="/dev/xvda", Architecture="x86_64")["ImageId"]
    ec2_backends[ACCOUNT][REGION].amis[ami].owner_alias = owner_alias  # what AWS shows for Amazon's AMIs
    if images:
        for (repository, region), tag in DLC.items():
            ecr = boto3.client("ecr", region_name=region)
            ecr.create_repository(repositoryName=repository)
            ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(
                {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                 "config": {"digest": "sha256:" + "a" * 64, "size": 1, "mediaType": "x"}, "layers": []}))
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName="MlAccel-prod-Storage", TemplateBody=
        json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"ModelWeightsUrl": {"Value": f"s3://{BUCKET}/weights/"}}}))
    if manifests:
        for prefix in ("bloom-176b-bf16", "opt-30b", "stable-diffusion-2-1-base"):
            s3.put_object(Bucket=BUCKET, Key=f"weights/{prefix}.staged.json", Body=b"{}")
    return ami


def pinned(ami: str = "ami-0123456789abcdef0", zone: str = GOOD_ZONE) -> list[str]:
    return [f"--set={k}={v}" for k, v in {"account": ACCOUNT, "region": REGION, "training.availability_zone": zone,
                                          "training.ami_id": ami}.items()]


def preflight(account: Account, argv: list[str], monkeypatch, docker=(True, "engine 28.0")) -> int:
    import ml_tools.preflight as tool

    real_run = tool.run
    monkeypatch.setattr(tool, "run", lambda args: real_run(args, session=account, docker=lambda: docker))
    return main(["preflight", *argv])


def rows_of(out: str) -> dict[str, str]:
    """check -> status, from the printed table."""
    statuses = "|".join(re.escape(s) for s in (checks.FAIL, checks.WARN, checks.CANNOT, checks.PASS, checks.INFO))
    return {m[2]: m[1] for m in re.finditer(rf"^({statuses}) +(.+?)  ", out, re.MULTILINE)}


# ---------------------------------------------------------------- the "done when"


def assert_every_prod_quota_fails(out: str) -> None:
    rows = rows_of(out)
    for name in PROD_ENDPOINT_QUOTAS:
        assert rows[f"quota {name} for endpoint usage"] == checks.FAIL
    assert rows["quota Running On-Demand Trn instances (vCPUs)"] == checks.FAIL
    assert rows["quota Running On-Demand Inf instances (vCPUs)"] == checks.FAIL


def test_prod_with_default_quotas_fails_naming_every_quota_it_needs(aws, monkeypatch, capsys):
    account = Account({name: 0 for name in PROD_ENDPOINT_QUOTAS})  # a new account: zero for all of them
    ami = put_resources()
    assert preflight(account, ["--env", "prod", *pinned(ami)], monkeypatch) == 1
    out = capsys.readouterr().out
    assert_every_prod_quota_fails(out)
    assert "--quota-code L-2C3B7624 --desired-value 528" in out  # 4 x trn1.32xlarge + 2 x trn1.2xlarge
    # the multi-model endpoint's autoscaling ceiling (40, not its 20 at start) plus a rolling batch of 25 %
    assert "--desired-value 50" in out
    assert out.count("FAIL ") == 6, out
    account.stub.assert_no_pending_responses()


def test_prod_with_quotas_raised_and_resources_present_passes(aws, monkeypatch, capsys):
    account = raised_quotas()
    ami = put_resources()
    assert preflight(account, ["--env", "prod", *pinned(ami)], monkeypatch) == 0
    out = capsys.readouterr().out
    rows = rows_of(out)
    assert checks.FAIL not in rows.values(), out
    assert rows["CDK bootstrap"] == rows["training AMI"] == rows["Docker engine"] == checks.PASS
    assert rows["weights of bloom-176b"] == rows["LLM serving image"] == checks.PASS
    assert rows["trn1.32xlarge offered"] == rows["inf2.8xlarge offered"] == checks.PASS
    # Docker Hub is not an AWS registry: shown, never passed.
    assert rows["base of the multi-model serving image built at deploy"] == checks.CANNOT
    assert "hourly cost (estimate)" in rows and "/h at the ceiling" in out
    assert set(account.calls) <= set(CALLS), "every call is in the IAM policy"


def test_strict_fails_on_a_check_that_cannot_run(aws, monkeypatch):
    ami = put_resources()
    assert preflight(raised_quotas(), ["--env", "prod", "--strict", *pinned(ami)], monkeypatch) == 1


# ---------------------------------------------------------------- each check: a passing and a failing account


def context(cfg_overrides: dict[str, str] | None = None, env: str = "prod", account: Account | None = None,
            docker=(True, "engine")) -> checks.Context:
    from config import load_config

    cfg = load_config(env, overrides={"account": ACCOUNT, "region": REGION,
                                      "training.availability_zone": GOOD_ZONE,
                                      "training.ami_id": "ami-0123456789abcdef0", **(cfg_overrides or {})})
    session = account or raised_quotas()
    return checks.Context(cfg, REGION, ACCOUNT, lambda service, where=None: guard(session.client(service, where)),
                          lambda: docker)


def statuses(rows: list[checks.Row]) -> dict[str, str]:
    return {row.check: row.status for row in rows}


def test_identity_fails_for_another_account_or_region(aws):
    ctx = context()
    assert set(statuses(checks.identity(ctx)).values()) == {checks.PASS}
    ctx.account, ctx.region = "999999999999", "eu-west-1"
    rows = checks.identity(ctx)
    assert statuses(rows) == {"account": checks.FAIL, "region": checks.FAIL}
    assert "--region us-east-1" in rows[1].fix


@pytest.mark.parametrize("version, status", [("30", checks.PASS), ("7", checks.FAIL), (None, checks.FAIL)])
def test_bootstrap_version(aws, version, status):
    if version:
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name="/cdk-bootstrap/hnb659fds/version", Value=version, Type="String")
    [row] = checks.bootstrap(context())
    assert row.status == status
    assert status == checks.PASS or f"npx cdk bootstrap aws://{ACCOUNT}/{REGION}" in row.fix


def test_access_denied_is_cannot_check_never_pass(aws):
    ssm = boto3.client("ssm", region_name=REGION)
    stub = Stubber(ssm)
    stub.add_client_error("get_parameter", "AccessDeniedException", "not authorized to perform ssm:GetParameter")
    stub.activate()
    ctx = context()
    ctx.client = lambda service, where=None: ssm
    [row] = checks.bootstrap(ctx)
    assert row.status == checks.CANNOT and "AccessDeniedException" in row.has and "ssm:GetParameter" in row.fix


def test_sagemaker_quota_counts_autoscaling_and_component_ceilings(aws):
    ctx = context({"llm.enabled": "false", "training.enabled": "false",
                   "stable_diffusion.hosting.mode": "inference-components",
                   "stable_diffusion.hosting.max_instances": "3"},
                  account=Account({"ml.c5d.18xlarge": 40, "ml.inf2.xlarge": 2}, quota_codes=()))
    rows = {row.check: row for row in checks.sagemaker_quotas(ctx)}
    assert rows["quota ml.c5d.18xlarge for endpoint usage"].status == checks.WARN  # 40 + 10 for a rolling update
    inf2 = rows["quota ml.inf2.xlarge for endpoint usage"]
    assert (inf2.status, inf2.needs.split(":")[0], inf2.has) == (checks.FAIL, "3", "2")  # components: max_instances


@pytest.mark.parametrize("quota, status", [(0, checks.FAIL), (1, checks.WARN), (2, checks.PASS)])
def test_a_one_instance_endpoint_needs_a_second_for_its_blue_green_update(aws, quota, status):
    ctx = context({"llm.enabled": "false", "training.enabled": "false", "multi_model.enabled": "false"},
                  account=Account({"ml.inf2.xlarge": quota}, quota_codes=()))
    [row] = checks.sagemaker_quotas(ctx)
    assert (row.status, row.needs.split(":")[0]) == (status, "1 (+1 during an update)")
    assert status == checks.PASS or "--desired-value 2" in row.fix


def test_sagemaker_quota_in_neither_the_applied_nor_the_default_list_is_cannot_check(aws):
    ctx = context({"llm.enabled": "false", "training.enabled": "false", "multi_model.enabled": "false"},
                  account=Account({}, quota_codes=(), endpoint_defaults={}))
    assert statuses(checks.sagemaker_quotas(ctx)) == {"quota ml.inf2.xlarge for endpoint usage": checks.CANNOT}


@pytest.mark.parametrize("default, status", [(0, checks.FAIL), (1, checks.WARN), (2, checks.PASS)])
def test_a_quota_never_raised_is_judged_by_its_aws_default(aws, default, status):
    # ListServiceQuotas leaves out a quota without an applied value: the AWS default is what the account has.
    account = Account({"ml.g5.xlarge": 4}, quota_codes=(), endpoint_defaults={"ml.inf2.xlarge": default})
    ctx = context({"llm.enabled": "false", "training.enabled": "false", "multi_model.enabled": "false"},
                  account=account)
    [row] = checks.sagemaker_quotas(ctx)
    account.stub.assert_no_pending_responses()
    assert (row.check, row.status) == ("quota ml.inf2.xlarge for endpoint usage", status)
    assert row.has.startswith(f"default {default}, never raised")
    assert status == checks.PASS or "--quota-code L-D0000000 --desired-value 2" in row.fix


def test_defaults_that_may_not_be_read_are_cannot_check_naming_the_action(aws):
    account = Account({}, quota_codes=())
    account.stub.add_client_error("list_aws_default_service_quotas", "AccessDeniedException",
                                  "not authorized to perform: servicequotas:ListAWSDefaultServiceQuotas")
    ctx = context({"llm.enabled": "false", "training.enabled": "false", "multi_model.enabled": "false"},
                  account=account)
    [row] = checks.sagemaker_quotas(ctx)
    assert row.status == checks.CANNOT and "servicequotas:ListAWSDefaultServiceQuotas" in row.fix


def test_prod_in_a_new_account_with_zero_defaults_fails_every_quota(aws, monkeypatch, capsys):
    # A new account: nothing applied, every default 0 (what ListServiceQuotas leaves out must still fail).
    account = Account({}, endpoint_defaults={name: 0 for name in PROD_ENDPOINT_QUOTAS},
                      vcpu_defaults={"L-1945791B": 0, "L-2C3B7624": 0})
    assert preflight(account, ["--env", "prod", *pinned(put_resources())], monkeypatch) == 1
    out = capsys.readouterr().out
    assert_every_prod_quota_fails(out)
    assert "default 0, never raised" in out
    assert ("service-quotas", "ListAWSDefaultServiceQuotas") in account.calls
    assert ("service-quotas", "GetAWSDefaultServiceQuota") in account.calls


@pytest.mark.parametrize("trn, status", [(528, checks.PASS), (512, checks.FAIL)])
def test_ec2_vcpu_quota_without_an_applied_value_uses_the_default(aws, trn, status):
    ctx = context(account=Account({}, {"L-1945791B": 32}, lists_sagemaker=False, vcpu_defaults={"L-2C3B7624": trn}))
    rows = {row.check: row for row in checks.ec2_vcpu_quotas(ctx)}
    trn_row = rows["quota Running On-Demand Trn instances (vCPUs)"]
    assert (trn_row.status, trn_row.has) == (status, f"default {trn}, never raised")
    assert rows["quota Running On-Demand Inf instances (vCPUs)"].status == checks.PASS


@pytest.mark.parametrize("trn, status", [(528, checks.PASS), (512, checks.FAIL)])
def test_ec2_vcpu_quota_of_the_batch_hosts(aws, trn, status):
    ctx = context(account=Account({}, {"L-1945791B": 32, "L-2C3B7624": trn}, lists_sagemaker=False))
    rows = statuses(checks.ec2_vcpu_quotas(ctx))
    assert rows == {"quota Running On-Demand Inf instances (vCPUs)": checks.PASS,
                    "quota Running On-Demand Trn instances (vCPUs)": status}


@pytest.mark.parametrize("zone, status", [(GOOD_ZONE, checks.PASS), (BAD_ZONE, checks.FAIL),
                                          # by name: moto's name table offers both in us-east-1f, neither in 1a
                                          ("us-east-1f", checks.PASS), ("us-east-1a", checks.FAIL)])
def test_training_instance_types_offered_in_the_cluster_zone(aws, zone, status):
    rows = statuses(checks.offerings(context({"training.availability_zone": zone})))
    assert rows["trn1.32xlarge offered"] == rows["trn1.2xlarge offered"] == status
    assert rows["inf2.8xlarge offered"] == checks.PASS  # us-east-1a (use1-az6) offers it


def test_compile_host_not_offered_in_either_compile_zone_fails(aws):
    rows = statuses(checks.offerings(context({"training.enabled": "false",
                                              "stable_diffusion.compile.instance_type": "trn1.2xlarge"})))
    assert rows == {"trn1.2xlarge offered": checks.PASS}  # use1-az6 has it
    ec2 = boto3.client("ec2", region_name=REGION)
    stub = Stubber(ec2)
    stub.add_response("describe_availability_zones", {"AvailabilityZones": [
        {"ZoneName": "us-east-1b", "ZoneId": "use1-az1"}, {"ZoneName": "us-east-1c", "ZoneId": "use1-az3"}]})
    stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": []})
    stub.activate()
    ctx = context({"training.enabled": "false"})
    ctx.client = lambda service, where=None: ec2
    [row] = checks.offerings(ctx)
    assert row.status == checks.FAIL and "none of them" in row.has


@pytest.mark.parametrize("name, owner, status", [(AMI_NAME, "amazon", checks.PASS),
                                                 ("al2023-ami-ecs-hvm-2023.0-x86_64", "amazon", checks.FAIL),
                                                 (AMI_NAME, None, checks.FAIL)])
def test_training_ami_is_the_ecs_neuron_ami(aws, name, owner, status):
    ami = put_resources(ami_name=name, owner_alias=owner, images=False, manifests=False)
    [row] = checks.neuron_ami(context({"training.ami_id": ami}))
    assert row.status == status


def test_training_ami_missing_or_unpinned(aws):
    [missing] = checks.neuron_ami(context({"training.ami_id": "ami-0123456789abcdef0"}))
    assert missing.status == checks.FAIL and "does not exist" in missing.has
    [unpinned] = checks.neuron_ami(context({"account": "null", "region": "null", "training.ami_id": "null",
                                            "training.availability_zone": "null"}))
    assert unpinned.status == checks.CANNOT and "/neuron/recommended/image_id" in unpinned.fix


def test_images_exist_or_fail(aws):
    put_resources(manifests=False)
    rows = statuses(checks.images(context()))
    assert rows["LLM serving image"] == checks.PASS
    # The training base comes from the public Neuron registry (no ECR API reads it): never a pass.
    assert rows["base of the training image built at deploy"] == checks.CANNOT
    boto3.client("ecr", region_name=REGION).batch_delete_image(
        repositoryName="djl-inference", imageIds=[{"imageTag": DLC[("djl-inference", REGION)]}])
    rows = statuses(checks.images(context()))
    assert rows["LLM serving image"] == checks.FAIL
    rows = statuses(checks.images(context({"training.image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mine:1"})))
    assert rows["training image"] == checks.FAIL  # no such repository


def test_staged_manifests_present_missing_or_storage_not_deployed(aws):
    [*rows] = checks.manifests(context())
    assert {r.status for r in rows} == {checks.FAIL} and "is not deployed" in rows[0].has
    put_resources(images=False, manifests=False)
    rows = checks.manifests(context())
    assert {r.status for r in rows} == {checks.FAIL}
    assert "stage-weights SNAPSHOT --env prod --model bloom-176b" in rows[0].fix
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="weights/opt-30b.staged.json", Body=b"{}")
    assert statuses(checks.manifests(context()))["weights of opt-30b"] == checks.PASS


def test_docker_needed_only_when_images_are_built(aws):
    assert statuses(checks.docker(context(docker=(False, "Cannot connect to the Docker daemon")))) == {
        "Docker engine": checks.FAIL}
    assert statuses(checks.docker(context())) == {"Docker engine": checks.PASS}
    prebuilt = {"training.image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/train:1",
                "multi_model.image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mme:0.36.0-cpu-full"}
    assert checks.docker(context(prebuilt, docker=(False, "no engine"))) == []


# ---------------------------------------------------------------- bad input: one line, exit 2


def test_unknown_environment_is_one_line(aws, monkeypatch, capsys):
    assert preflight(raised_quotas(), ["--env", "nope"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "unknown environment 'nope'" in err and len(err.strip().splitlines()) == 1


def test_no_credentials_is_one_line(monkeypatch, capsys, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["preflight", "--env", "dev", "--region", REGION]) == 2
    err = capsys.readouterr().err
    assert "no usable AWS credentials" in err and len(err.strip().splitlines()) == 1


def test_region_without_sagemaker_is_one_line(aws, monkeypatch, capsys):
    account = raised_quotas()
    monkeypatch.setattr(account, "get_available_regions", lambda service, partition_name="aws": (
        [] if service == "sagemaker" else [REGION]))
    assert preflight(account, ["--env", "dev", "--region", REGION], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "has no Amazon SageMaker" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- read-only, and the policy


def test_unlisted_calls_are_refused_before_sending(aws):
    ec2 = guard(boto3.client("ec2", region_name=REGION))
    with pytest.raises(UnlistedCall):
        ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)
    assert all(op.startswith(("Describe", "Get", "List", "BatchGet")) for _, op in CALLS), "read-only calls only"


def test_printed_policy_allows_exactly_the_listed_actions(aws, monkeypatch, capsys):
    assert preflight(raised_quotas(), ["--env", "prod", "--region", REGION, "--print-policy"], monkeypatch) == 0
    policy = json.loads(capsys.readouterr().out)
    actions = set()
    for statement in policy["Statement"]:
        actions |= {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        assert statement["Effect"] == "Allow"
    assert actions == set(CALLS.values())
    resources = json.dumps(policy)
    assert "arn:aws:s3:::mlaccel-prod-storage-*" in resources and "stack/MlAccel-prod-*/*" in resources
    assert '"arn:aws:s3:::*' not in resources  # no wildcard bucket


def test_required_bootstrap_version_is_what_the_synthesized_app_requires(platform_synth):
    """aws-cdk-lib states the bootstrap version its roles and assets need in the cloud assembly."""
    _cfg, assembly = platform_synth("dev")
    manifest = json.loads((__import__("pathlib").Path(assembly.directory) / "manifest.json").read_text())
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("requiresBootstrapStackVersion", "minimumBootstrapStackVersion"):
                    found.add(int(value))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest)
    assert found and max(found) == checks.REQUIRED_BOOTSTRAP_VERSION, found


def test_environment_policy_helper_matches_cli(aws):
    from config import load_config

    policy = environment_policy(load_config("dev"), REGION, ACCOUNT)
    assert policy["Statement"][1]["Resource"] == (
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cdk-bootstrap/hnb659fds/version")


def test_first_deploy_page_starts_with_preflight_and_shows_its_current_policy():
    from pathlib import Path

    from config import load_config

    page = (Path(__file__).resolve().parents[2] / "docs" / "first-deploy.md").read_text()
    sections = re.findall(r"^## (.+)$", page, re.MULTILINE)
    assert sections[0].startswith("0. Preflight")
    shown = json.loads(page.split("### The IAM policy preflight needs", 1)[1].split("```json", 1)[1].split("```")[0])
    cfg = load_config("prod", overrides={"account": "111111111111", "region": "us-east-1",
                                         "training.availability_zone": "use1-az6",
                                         "training.ami_id": "ami-0123456789abcdef0"})
    assert shown == environment_policy(cfg, "us-east-1", "111111111111"), "regenerate it with --print-policy"


def test_existing_vpc_subnets_zones_are_checked(aws):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {zone: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZoneId=zone)["Subnet"]["SubnetId"]
               for zone, cidr in ((GOOD_ZONE, "10.0.0.0/20"), (BAD_ZONE, "10.0.16.0/20"))}
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"][0]["GroupId"]

    def rows(*zones):
        return statuses(checks.offerings(context({
            "training.existing_vpc": json.dumps({"vpc_id": vpc, "subnet_ids": [subnets[z] for z in zones],
                                                 "default_security_group_id": group})})))

    assert rows(GOOD_ZONE)["trn1.32xlarge offered"] == checks.PASS
    assert rows(GOOD_ZONE, BAD_ZONE)["trn1.32xlarge offered"] == checks.FAIL  # every subnet's zone must offer it


def test_compiled_artifacts_manifest_when_the_compile_is_off(aws):
    put_resources(images=False, manifests=False)
    boto3.client("cloudformation", region_name=REGION).update_stack(StackName="MlAccel-prod-Storage", TemplateBody=
        json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"ModelWeightsUrl": {"Value": f"s3://{BUCKET}/weights/"},
                                "NeuronArtifactsUrl": {"Value": f"s3://{BUCKET}/neuron-artifacts/"}}}))
    ctx = context({"llm.enabled": "false", "stable_diffusion.compile.enabled": "false"})
    [row] = checks.manifests(ctx)
    assert (row.check, row.status) == ("Stable Diffusion compiled artifacts", checks.FAIL)
    assert row.needs == f"s3://{BUCKET}/neuron-artifacts/stable-diffusion-2-1-base/manifest.json"
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key="neuron-artifacts/stable-diffusion-2-1-base/manifest.json", Body=b"{}")
    assert [r.status for r in checks.manifests(ctx)] == [checks.PASS]
