"""What the tools share: SageMaker runtime calls, endpoint names from stack outputs, and one-line
explanations of AWS errors (``python -m ml_tools`` turns those into exit code 2)."""
from __future__ import annotations

import json
import re
from typing import Any


class EndpointError(ValueError):
    """The endpoint refused the request; the message holds the code and the model's answer."""


# One attempt, no retries: a load test must count throttling and errors as
# failures, not hide them as latency behind botocore's back-off.
NO_RETRIES = {"total_max_attempts": 1}
# What the endpoint itself answered (its model or its instances), as opposed to AWS refusing the call.
_ENDPOINT_REFUSALS = {"ModelError", "ModelNotReadyException", "InternalFailure", "ServiceUnavailable",
                      "InternalDependencyException", "ThrottlingException"}


def runtime_client(region: str | None = None, *, retries: dict[str, int] | None = None) -> Any:
    """A sagemaker-runtime client; ``retries`` replaces botocore's retry settings."""
    import boto3
    from botocore.config import Config

    config = Config(retries=retries) if retries is not None else None
    return boto3.client("sagemaker-runtime", region_name=region, config=config)


def invoke_json(client: Any, endpoint: str, payload: Any, *, target_model: str | None = None,
                accept: str = "application/json") -> tuple[str, bytes]:
    """POST ``payload`` as JSON; returns (content type, body bytes)."""
    from botocore.exceptions import ClientError

    kwargs = {"TargetModel": target_model} if target_model else {}
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept=accept, Body=json.dumps(payload), **kwargs
        )
    except ClientError as err:
        error = err.response.get("Error", {})
        if error.get("Code") not in _ENDPOINT_REFUSALS and "OriginalMessage" not in err.response:
            raise  # credentials, permissions, a missing endpoint: explain_aws_error's business
        # A container's 4xx arrives as ModelError; its own answer is in OriginalMessage.
        message = f"{endpoint}: {error.get('Code', 'error')}: {error.get('Message', err)}"
        if "OriginalMessage" in err.response:
            message += f" (the model answered {err.response.get('OriginalStatusCode', '?')}: {err.response['OriginalMessage']})"
        raise EndpointError(message) from err
    return response.get("ContentType", ""), response["Body"].read()


# ---------------------------------------------------------------- AWS errors, one line each


class ToolError(Exception):
    """A problem the user can fix, already phrased as one line with what to do (exit code 2)."""


def set_overrides(items: list[str]) -> dict[str, str]:
    """The ``--set KEY=VALUE`` settings of cost, verify and preflight (``cdk synth -c set:KEY=VALUE``)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ToolError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = value
    return overrides


_CREDENTIALS_HINT = ("configure credentials: `aws configure`, `aws sso login --profile NAME` with AWS_PROFILE=NAME, "
                     "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
TRAINING_STACK_HINT = ("deploy the training stack (`npx cdk deploy -c env=<env> MlAccel-<env>-Training`) and pass the "
                       "names or ARNs from its outputs (JobQueueArn, TrainingJobDefinitionArn)")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "403", "Forbidden"}
_BAD_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "RequestExpired"}


def explain_aws_error(err: BaseException) -> str | None:
    """One line saying what went wrong and what to do, or None for an error that is not AWS's."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a requirement of the tools
        return None
    if isinstance(err, bx.NoRegionError):
        return "no AWS region: pass --region REGION or set AWS_REGION (or a region in your AWS profile)"
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                        bx.TokenRetrievalError, bx.UnauthorizedSSOTokenError, bx.SSOError, bx.SSOTokenLoadError)):
        return f"no usable AWS credentials ({err}); {_CREDENTIALS_HINT}"
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return f"cannot reach AWS ({err}); check the network, a proxy, and the region (--region)"
    if isinstance(err, bx.ParamValidationError):
        return f"AWS rejected the request before sending it: {err}"
    if not isinstance(err, bx.ClientError):
        return None
    error = err.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
    operation = getattr(err, "operation_name", "the call")
    said = f"{code}: {message}" if message else code
    lowered = message.lower()
    if code in _BAD_CREDENTIALS:
        return f"AWS did not accept the credentials ({said}); {_CREDENTIALS_HINT}"
    if code in _DENIED:
        return (f"access denied to {operation} ({said}); the identity in use (`aws sts get-caller-identity`) "
                f"needs that permission, or use a profile that has it")
    if code == "NoSuchBucket":
        bucket = error.get("BucketName", "")
        return (f"bucket {bucket + ' ' if bucket else ''}does not exist ({said}); deploy the storage stack "
                "(`npx cdk deploy MlAccel-<env>-Storage -c env=<env>`) or check the S3 URL and --region")
    if code == "ValidationError" and "stack" in lowered and "does not exist" in lowered:
        return (f"{message}; deploy it (`npx cdk deploy -c env=<env> <stack>`), or check --env and --region "
                "(stacks are per region)")
    if code == "ValidationError" and "endpoint" in lowered and "not found" in lowered:
        return (f"{message.rstrip('.')}; check --endpoint-name (or --env) and --region, and that the endpoint's stack "
                "is deployed and InService (`aws sagemaker describe-endpoint --endpoint-name NAME`)")
    if code in {"ClientException", "ResourceNotFoundException"} and (
            "job definition" in lowered or "jobdefinition" in lowered or "job queue" in lowered):
        return f"{said}; {TRAINING_STACK_HINT}"
    if code in {"ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown"}:
        return f"AWS throttled {operation} ({said}); wait and run again, or lower the concurrency"
    return f"AWS refused {operation} ({said})"


# ---------------------------------------------------------------- stack outputs


def stack_name(env: str, component: str) -> str:
    """The deployed stack of ``component`` (Storage, StableDiffusion, MultiModel, Llm, Training) in ``env``."""
    from config import ConfigError, load_config  # pure Python: no CDK runtime

    try:
        cfg = load_config(env, env_source="--env")
    except ConfigError as err:
        raise ToolError(" ".join(str(err).split("\n  - ")).replace("\n", " ")) from err
    return f"{cfg.stack_prefix}-{cfg.environment}-{component}"


def stack_outputs(stack: str, region: str | None, client: Any = None) -> list[dict[str, str]]:
    """The outputs of a deployed stack (``OutputKey``, ``OutputValue``, ``Description``)."""
    if client is None:
        import boto3

        client = boto3.client("cloudformation", region_name=region)
    return client.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])


_ENDPOINT_OUTPUT = "SageMaker endpoint "  # the description every endpoint construct gives its EndpointName output
_CONFIG_OUTPUT = "SageMaker endpoint config deployed to "  # its endpoint config output (ml_tools.verify reads it)


def endpoint_names(stack: str, region: str | None, client: Any = None) -> dict[str, str]:
    """``{construct path: endpoint name}`` from a stack's endpoint outputs (their keys carry a hash; their
    descriptions name the construct)."""
    return {
        output["Description"][len(_ENDPOINT_OUTPUT):]: output["OutputValue"]
        for output in stack_outputs(stack, region, client)
        if output.get("Description", "").startswith(_ENDPOINT_OUTPUT)
        and not output.get("Description", "").startswith(_CONFIG_OUTPUT)
    }


def endpoint_from_env(env: str, component: str, region: str | None, *, select: str | None = None,
                      client: Any = None) -> str:
    """The endpoint name of ``component``'s stack in ``env``; ``select`` picks one of several by its path."""
    stack = stack_name(env, component)
    found = endpoint_names(stack, region, client)
    if select is not None:
        wanted = _plain_name(select)
        found = {path: name for path, name in found.items() if wanted in map(_plain_name, path.split("/"))}
    if len(found) == 1:
        return next(iter(found.values()))
    listed = ", ".join(f"{name} ({path})" for path, name in sorted(found.items())) or "none"
    raise ToolError(f"--env {env}: stack {stack} has {len(found)} matching endpoint outputs: {listed}; "
                    "pass --endpoint-name" + ("" if select else " (or --model-name NAME to pick one)"))


def _plain_name(name: str) -> str:
    # "opt-30b" names the construct "Opt30b": compare letters and digits only
    return re.sub(r"[^a-z0-9]", "", name.lower())


def add_endpoint_arguments(parser: Any, *, cold_start: bool = True) -> None:
    """--endpoint-name/--env/--model-name/--region, and with ``cold_start`` the options of
    :func:`ml_tools.cold_start.wrap` (for a tool that wraps its client with it)."""
    parser.add_argument("--endpoint-name", help="the SageMaker endpoint's name (or find it with --env)")
    parser.add_argument("--env", help="find the endpoint in this environment's deployed stack outputs")
    parser.add_argument("--model-name", help="with --env, when the stack has several endpoints (the LLM stack): "
                        "the model whose endpoint to call, e.g. opt-30b")
    parser.add_argument("--region", help="AWS region (default: the usual boto3 resolution)")
    if not cold_start:
        return
    from ml_tools.cold_start import add_cold_start_arguments

    add_cold_start_arguments(parser)  # --inference-component, --cold-start-wait (endpoints scaled to zero)


def resolve_endpoint_name(args: Any, component: str, client: Any = None) -> None:
    """Fill ``args.endpoint_name`` from ``--env`` (the tools' entry point calls this before ``run``)."""
    if getattr(args, "endpoint_name", None):
        return
    env = getattr(args, "env", None)
    if env is None:
        raise ToolError("--endpoint-name NAME or --env ENV is required")
    select = getattr(args, "model_name", None)
    args.endpoint_name = endpoint_from_env(env, component, args.region, select=select, client=client)
