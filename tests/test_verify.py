"""`python -m ml_tools verify`: stacks and endpoints faked with moto; the runtime's answers stubbed.

moto covers CloudFormation outputs and SageMaker DescribeEndpoint; the model's
answer to InvokeEndpoint is what a real container would send, so it is given
with botocore's Stubber.
"""
from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from ml_tools.__main__ import main
from ml_tools.verify import Clients, DeployedComponent, deployed_endpoints, run
from tests.helpers import resources_of_type

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sm"


class Args:
    def __init__(self, env="dev", sets=(), no_invoke=False):
        self.env, self.config, self.set, self.region, self.no_invoke = env, None, list(sets), REGION, no_invoke


def deploy_stack(cfn, name: str, endpoints: dict[str, str]) -> None:
    """A stack whose outputs look like the synthesized ones: each endpoint's name and config name."""
    outputs = {}
    for i, (endpoint, config) in enumerate(sorted(endpoints.items())):
        path = f"{name}/{endpoint}"
        outputs[f"Name{i}"] = {"Value": endpoint, "Description": f"SageMaker endpoint {path}"}
        outputs[f"Config{i}"] = {"Value": config, "Description": f"SageMaker endpoint config deployed to {path}"}
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))


def create_endpoint(sm, name: str, active_config: str, other_configs: tuple[str, ...] = ()) -> None:
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"})
    for config in (active_config, *other_configs):
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": f"{name}-model", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=active_config)


def body(payload) -> StreamingBody:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        cfn, sm = boto3.client("cloudformation", REGION), boto3.client("sagemaker", REGION)
        runtime = boto3.client("sagemaker-runtime", REGION)
        deploy_stack(cfn, "MlAccel-dev-StableDiffusion", {"sd-endpoint": "sd-config-2"})
        deploy_stack(cfn, "MlAccel-dev-MultiModel", {"mme-endpoint": "mme-config-2"})
        create_endpoint(sm, "mme-endpoint", "mme-config-2", ("mme-config-1",))
        yield Clients(cfn, sm, runtime)


def stub_answers(runtime, *answers) -> Stubber:
    stubber = Stubber(runtime)
    for endpoint, target, payload, content_type in answers:
        expected = {"EndpointName": endpoint, "ContentType": "application/json", "Accept": ANY, "Body": ANY}
        if target:
            expected["TargetModel"] = target
        stubber.add_response("invoke_endpoint", {"Body": body(payload), "ContentType": content_type}, expected)
    stubber.activate()
    return stubber


PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


def test_endpoints_running_the_deployed_config_and_answering_pass(aws, capsys):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-2")
    stubber = stub_answers(
        aws.runtime,
        ("sd-endpoint", None, PNG, "image/png"),
        ("mme-endpoint", "sklearn-0.tar.gz", {"predictions": [3.0]}, "application/json"),
    )
    assert run(Args(), clients=aws) == 0
    stubber.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "ok    sd-endpoint: InService on sd-config-2; answered an image of 108 bytes" in out
    assert "ok    mme-endpoint: InService on mme-config-2; answered sklearn-0.tar.gz predicted 3.0" in out


def test_an_asynchronous_endpoint_passes_without_a_synchronous_invocation(aws, capsys):
    # SageMaker refuses InvokeEndpoint on an asynchronous endpoint: verify must not send one.
    aws.sagemaker.create_model(ModelName="sd-endpoint-model", ExecutionRoleArn=ROLE,
                               PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"})
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName="sd-config-2",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "sd-endpoint-model",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],  # moto knows no inf2
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://models/async-inference/responses/"}})
    aws.sagemaker.create_endpoint(EndpointName="sd-endpoint", EndpointConfigName="sd-config-2")
    stubber = stub_answers(aws.runtime, ("mme-endpoint", "sklearn-0.tar.gz", {"predictions": [3.0]}, "application/json"))
    assert run(Args(), clients=aws) == 0
    stubber.assert_no_pending_responses()
    assert "ok    sd-endpoint: InService on sd-config-2; asynchronous, not invoked" in capsys.readouterr().out


def test_a_rolled_back_update_fails_naming_both_configs(aws, capsys):
    # The stack says config 2 was deployed; SageMaker still serves config 1 (it rolled back).
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))
    assert run(Args(no_invoke=True), clients=aws) == 1
    err = capsys.readouterr().err
    assert ("FAIL  sd-endpoint: active endpoint config sd-config-1, but the stack deployed sd-config-2: "
            "the update was rolled back") in err
    assert ("The live config sd-config-1 and its models still exist: fix the cause and deploy again, or deploy the "
            "previous commit so that the stack matches what runs (docs/operations.md#after-a-rolled-back-update)") in err
    assert "verify: 1 ok, 1 failure(s)" in err


def test_a_rolled_back_endpoint_whose_live_config_cloudformation_deleted_names_what_to_recreate(aws, capsys):
    # CloudFormation saw the update succeed and deleted what it replaced: the config and model that run again.
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))
    aws.sagemaker.delete_endpoint_config(EndpointConfigName="sd-config-1")
    assert run(Args(no_invoke=True), clients=aws) == 1
    err = capsys.readouterr().err
    assert ("What runs no longer exists in SageMaker: endpoint config sd-config-1 (CloudFormation deletes what an "
            "update replaced once it thinks the update succeeded); every later update of this endpoint fails with "
            '"Could not find endpoint configuration" until you recreate endpoint config sd-config-1 under the same '
            "name(s) with their previous settings, then fix the cause and deploy again "
            "(docs/operations.md#after-a-rolled-back-update)") in err


def test_a_rolled_back_endpoint_whose_live_model_is_gone_names_the_model(aws, capsys):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))
    aws.sagemaker.delete_model(ModelName="sd-endpoint-model")
    assert run(Args(no_invoke=True), clients=aws) == 1
    assert "What runs no longer exists in SageMaker: model sd-endpoint-model (" in capsys.readouterr().err


def test_a_rolled_back_endpoint_still_diagnosed_when_the_model_may_not_be_described(aws, capsys):
    # A verify role without sagemaker:DescribeModel: the rollback is still reported, the model's fate is unknown.
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))
    aws.sagemaker.meta.events.register("before-call.sagemaker.DescribeModel", deny)
    assert run(Args(no_invoke=True), clients=aws) == 1
    err = capsys.readouterr().err
    assert ("FAIL  sd-endpoint: active endpoint config sd-config-1, but the stack deployed sd-config-2: "
            "the update was rolled back") in err
    assert ("The live config is sd-config-1; cannot tell whether model sd-endpoint-model still exists: access denied "
            "(the role running verify needs sagemaker:DescribeModel); if CloudFormation deleted it, recreate it under "
            "the same name with its previous settings before the next deploy "
            "(docs/operations.md#after-a-rolled-back-update)") in err
    assert "AccessDeniedException" not in err


def test_a_rolled_back_endpoint_whose_config_may_not_be_described_keeps_the_diagnosis(aws, capsys):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-1", ("sd-config-2",))
    aws.sagemaker.meta.events.register("before-call.sagemaker.DescribeEndpointConfig", deny)
    assert run(Args(no_invoke=True), clients=aws) == 1
    err = capsys.readouterr().err
    assert "the update was rolled back" in err
    assert ("cannot tell whether endpoint config sd-config-1 (and its models) still exists: access denied (the role "
            "running verify needs sagemaker:DescribeEndpointConfig)") in err


def deny(model, **_):
    """SageMaker's answer to a caller whose policy lacks the action (an HTTP 400 AccessDeniedException)."""
    from botocore.awsrequest import AWSResponse

    return (AWSResponse(None, 400, {}, None),
            {"Error": {"Code": "AccessDeniedException", "Message": f"User is not authorized to perform: "
                                                                   f"sagemaker:{model.name}"}})


def test_a_missing_endpoint_or_stack_fails_with_the_reason(aws, capsys):
    assert run(Args(sets=["llm.enabled=true"], no_invoke=True), clients=aws) == 1
    err = capsys.readouterr().err
    assert "FAIL  MlAccel-dev-Llm: not deployed in this account and region" in err
    assert "FAIL  sd-endpoint: ValidationException" in err


def test_a_model_error_fails_with_the_models_answer(aws, capsys):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-2")
    stubber = Stubber(aws.runtime)
    stubber.add_client_error("invoke_endpoint", "ModelError", "Received client error (400) from primary",
                             http_status_code=424)
    stubber.add_response("invoke_endpoint", {"Body": body({"predictions": [1.0, 2.0]}), "ContentType": "application/json"})
    stubber.activate()
    assert run(Args(), clients=aws) == 1
    err = capsys.readouterr().err
    assert "FAIL  sd-endpoint: ModelError: Received client error (400) from primary" in err
    assert "FAIL  mme-endpoint: 1 input sent to sklearn-0.tar.gz, got [1.0, 2.0]" in err


def test_no_invoke_checks_only_status_and_config(aws, capsys):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-2")
    Stubber(aws.runtime).activate()  # any invocation would raise: none is expected
    assert run(Args(no_invoke=True), clients=aws) == 0
    assert "ok    sd-endpoint: InService on sd-config-2\n" in capsys.readouterr().out


def test_a_stack_left_in_rollback_fails(aws, capsys, monkeypatch):
    create_endpoint(aws.sagemaker, "sd-endpoint", "sd-config-2")
    real = aws.cloudformation.describe_stacks

    def rolled_back(**kwargs):
        answer = real(**kwargs)
        answer["Stacks"][0]["StackStatus"] = "UPDATE_ROLLBACK_COMPLETE"
        return answer

    monkeypatch.setattr(aws.cloudformation, "describe_stacks", rolled_back)
    assert run(Args(no_invoke=True), clients=aws) == 1
    assert "MlAccel-dev-MultiModel: stack status UPDATE_ROLLBACK_COMPLETE; the last deploy did not complete" in (
        capsys.readouterr().err)


def test_the_subcommand_is_registered_and_reports_config_errors(capsys):
    assert main(["verify", "--env", "nope"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err


def render(value, resources: dict) -> str:
    """An output value as CloudFormation would render it (GetAtt -> a name made from the logical id)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p, resources) for p in parts)
    if "Ref" in value:
        return value["Ref"]
    if "Fn::Select" in value:
        index, (listed,) = value["Fn::Select"][0], value["Fn::Select"][1].values()
        separator, text = listed
        return render(text, resources).split(separator)[index]
    logical_id, attribute = value["Fn::GetAtt"]
    name = f"{resources[logical_id]['Type'].rsplit('::', 1)[1]}-{logical_id}"
    return f"arn:aws:sagemaker:{REGION}:123456789012:resource/{name}" if attribute.endswith("Arn") else name


def describing_outputs(stack_name: str, template: dict) -> tuple[object, Stubber]:
    """A CloudFormation client whose one DescribeStacks answers ``template``'s outputs as deployed values."""
    outputs = [{"OutputKey": key, "OutputValue": render(o["Value"], template["Resources"]),
                "Description": o.get("Description", "")} for key, o in template["Outputs"].items()]
    cloudformation = boto3.client("cloudformation", REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(cloudformation)
    stubber.add_response("describe_stacks", {"Stacks": [{
        "StackName": stack_name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "UPDATE_COMPLETE",
        "Outputs": outputs}]}, {"StackName": stack_name})
    return cloudformation, stubber


def test_verify_reads_the_outputs_the_prod_synth_writes(platform_synth):
    """Each prod endpoint's Deployed output names its own endpoint and endpoint config."""
    cfg, assembly = platform_synth("prod")
    for workload, stack_name in cfg.endpoint_stacks().items():
        template = assembly.get_stack_by_name(stack_name).template
        cloudformation, stubber = describing_outputs(stack_name, template)
        with stubber:
            found = deployed_endpoints(cloudformation, workload, stack_name)
        endpoints = resources_of_type(template, "AWS::SageMaker::Endpoint")
        assert len(found) == len(endpoints) >= 1
        for record in found:
            endpoint_id = record.endpoint_name.split("-", 1)[1]
            config_ref = endpoints[endpoint_id]["Properties"]["EndpointConfigName"]["Fn::GetAtt"][0]
            assert record.endpoint_config_name == f"EndpointConfig-{config_ref}"


# --- endpoints that host inference components (dev's Stable Diffusion) -------------------------------------
# moto 5.2.5 has no DescribeInferenceComponent: SageMaker's answers are stubbed (Stubber checks them against
# botocore's service model), CloudFormation stays moto's.

SD_STACK = "MlAccel-dev-StableDiffusion"
COMPONENT = "sd-component-abc123"


def deploy_component_stack(cfn) -> None:
    path = f"{SD_STACK}/Endpoint"
    outputs = {
        "Name": {"Value": "sd-endpoint", "Description": f"SageMaker endpoint {path}"},
        "Config": {"Value": "sd-config-2", "Description": f"SageMaker endpoint config deployed to {path}"},
        "Component": {"Value": COMPONENT, "Description": f"SageMaker inference component {path}/Model "
                                                         "(pass as --inference-component to the invoke tools)"},
        "Model": {"Value": "sd-model-2", "Description": f"SageMaker model deployed to inference component {path}/Model"},
    }
    cfn.create_stack(StackName=SD_STACK, TemplateBody=json.dumps(
        {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}))


@pytest.fixture
def components(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        cfn = boto3.client("cloudformation", REGION)
        deploy_component_stack(cfn)
        sm, runtime = boto3.client("sagemaker", REGION), boto3.client("sagemaker-runtime", REGION)
        yield Clients(cfn, sm, runtime)


def stub_component(sm, *, status="InService", desired=1, current=1, reason=None, model="sd-model-2") -> Stubber:
    stubber = Stubber(sm)
    stubber.add_response("describe_endpoint", {
        "EndpointName": "sd-endpoint", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/sd-endpoint",
        "EndpointConfigName": "sd-config-2", "EndpointStatus": "InService",
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"},
        {"EndpointName": "sd-endpoint"})
    described = {
        "InferenceComponentName": COMPONENT,
        "InferenceComponentArn": f"arn:aws:sagemaker:us-east-1:123456789012:inference-component/{COMPONENT}",
        "EndpointName": "sd-endpoint", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/sd-endpoint",
        "InferenceComponentStatus": status, "RuntimeConfig": {"DesiredCopyCount": desired, "CurrentCopyCount": current},
        "Specification": {"ModelName": model},
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    if reason:
        described["FailureReason"] = reason
    stubber.add_response("describe_inference_component", described, {"InferenceComponentName": COMPONENT})
    stubber.activate()
    return stubber


def sd_only(no_invoke=False) -> Args:
    return Args(sets=["multi_model.enabled=false"], no_invoke=no_invoke)


def test_a_running_component_is_checked_and_invoked_by_name(components, capsys):
    stub_component(components.sagemaker)
    runtime = Stubber(components.runtime)
    runtime.add_response("invoke_endpoint", {"Body": body(PNG), "ContentType": "image/png"}, {
        "EndpointName": "sd-endpoint", "InferenceComponentName": COMPONENT, "ContentType": "application/json",
        "Accept": ANY, "Body": ANY})
    runtime.activate()
    assert run(sd_only(), clients=components) == 0
    runtime.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "ok    sd-endpoint: InService on sd-config-2\n" in out
    assert f"ok    sd-endpoint / {COMPONENT}: InService, 1 of 1 copies running; answered an image of 108 bytes" in out


def test_a_component_scaled_to_zero_passes_reported_as_idle_and_is_not_woken(components, capsys):
    stub_component(components.sagemaker, desired=0, current=0)
    Stubber(components.runtime).activate()  # any invocation would raise: none is expected
    assert run(sd_only(), clients=components) == 0
    out = capsys.readouterr().out
    assert (f"idle  sd-endpoint / {COMPONENT}: InService, scaled to zero (0 copies); not invoked: a request starts a "
            "copy and waits minutes for an instance (--wake to invoke it through the cold start)") in out
    assert "verify: 1 ok, 1 scaled to zero (not invoked), 0 failure(s)" in out


def test_wake_invokes_a_component_scaled_to_zero_through_its_cold_start(components):
    from ml_tools.verify import verify

    stub_component(components.sagemaker, desired=0, current=0)
    runtime = Stubber(components.runtime)
    runtime.add_client_error("invoke_endpoint", "ValidationError",
                             "Inference Component has no capacity to process this request.", http_status_code=400)
    runtime.add_response("invoke_endpoint", {"Body": body(PNG), "ContentType": "image/png"})
    runtime.activate()
    report = verify({"stable_diffusion": SD_STACK}, components, wake=True, cold_start_retry={"sleep": lambda s: None})
    assert report.failed == [] and report.idle == []
    assert report.passed[1].startswith(f"sd-endpoint / {COMPONENT}: InService, scaled to zero (0 copies); answered "
                                       "an image of 108 bytes")
    assert "(cold start: answered after" in report.passed[1]


def test_without_wake_a_component_with_no_capacity_fails_at_once(components):
    from ml_tools.verify import verify

    stub_component(components.sagemaker, desired=1, current=1)
    runtime = Stubber(components.runtime)
    runtime.add_client_error("invoke_endpoint", "ValidationError",
                             "Inference Component has no capacity to process this request.", http_status_code=400)
    runtime.activate()
    report = verify({"stable_diffusion": SD_STACK}, components, cold_start_retry={"sleep": pytest.fail})
    assert len(report.failed) == 1 and report.failed[0].startswith(f"sd-endpoint / {COMPONENT}: no capacity after")


def test_a_failed_component_fails_with_its_reason(components, capsys):
    stub_component(components.sagemaker, status="Failed", desired=1, current=0,
                   reason="The container failed the ping health check")
    assert run(sd_only(no_invoke=True), clients=components) == 1
    assert (f"FAIL  sd-endpoint / {COMPONENT}: inference component status Failed, expected InService "
            "(The container failed the ping health check)") in capsys.readouterr().err


@pytest.mark.parametrize("model_exists", [True, False, None])  # None: the verify role may not describe it
def test_a_rolled_back_component_update_fails_naming_both_models(components, capsys, model_exists):
    stubber = stub_component(components.sagemaker, model="sd-model-1")  # the stack deployed sd-model-2
    if model_exists is None:
        stubber.add_client_error("describe_model", "AccessDeniedException",
                                 "User is not authorized to perform: sagemaker:DescribeModel",
                                 expected_params={"ModelName": "sd-model-1"})
    elif model_exists:
        stubber.add_response("describe_model", {
            "ModelName": "sd-model-1", "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/sd-model-1",
            "CreationTime": "2026-01-01T00:00:00Z"}, {"ModelName": "sd-model-1"})
    else:
        stubber.add_client_error("describe_model", "ValidationException", "Could not find model \"sd-model-1\".",
                                 expected_params={"ModelName": "sd-model-1"})
    Stubber(components.runtime).activate()
    assert run(sd_only(), clients=components) == 1
    err = capsys.readouterr().err
    assert (f"FAIL  sd-endpoint / {COMPONENT}: the component runs model sd-model-1, but the stack deployed sd-model-2: "
            "the update was rolled back") in err
    assert ("cannot tell whether the running model sd-model-1 still exists: access denied (the role running verify "
            "needs sagemaker:DescribeModel)" if model_exists is None else
            "the running model sd-model-1 still exists: fix the cause and deploy again" if model_exists else
            "the running model sd-model-1 no longer exists (CloudFormation deleted it after the update): recreate it "
            "under that name with its previous settings before the next deploy") in err


def test_verify_reads_the_component_outputs_the_dev_synth_writes(platform_synth):
    cfg, assembly = platform_synth("dev")
    stack_name = cfg.endpoint_stacks()["stable_diffusion"]
    template = assembly.get_stack_by_name(stack_name).template
    cloudformation, stubber = describing_outputs(stack_name, template)
    with stubber:
        (record,) = deployed_endpoints(cloudformation, "stable_diffusion", stack_name)
    (component_id,) = resources_of_type(template, "AWS::SageMaker::InferenceComponent")
    (config_id,) = resources_of_type(template, "AWS::SageMaker::EndpointConfig")
    assert record.endpoint_config_name == f"EndpointConfig-{config_id}"
    # the component's name: the last part of its ARN, as the stack output renders it; its model's name
    model_id = template["Resources"][component_id]["Properties"]["Specification"]["ModelName"]["Fn::GetAtt"][0]
    assert record.components == (DeployedComponent(f"InferenceComponent-{component_id}", f"Model-{model_id}"),)


def test_the_tools_find_the_endpoint_name_not_its_config_name_in_the_dev_outputs(platform_synth):
    from ml_tools.runtime import endpoint_from_env

    cfg, assembly = platform_synth("dev")
    stack_name = cfg.endpoint_stacks()["stable_diffusion"]
    template = assembly.get_stack_by_name(stack_name).template
    cloudformation, stubber = describing_outputs(stack_name, template)
    (endpoint_id,) = resources_of_type(template, "AWS::SageMaker::Endpoint")
    with stubber:  # one endpoint: its name, although the config output's description starts alike
        assert endpoint_from_env("dev", "StableDiffusion", REGION, client=cloudformation) == f"Endpoint-{endpoint_id}"
