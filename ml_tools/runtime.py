"""SageMaker runtime calls shared by the invocation tools and the load test."""
from __future__ import annotations

import json
from typing import Any


class EndpointError(ValueError):
    """The endpoint refused the request; the message holds the code and the model's answer."""


# One attempt, no retries: a load test must count throttling and errors as
# failures, not hide them as latency behind botocore's back-off.
NO_RETRIES = {"total_max_attempts": 1}


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
        # A container's 4xx arrives as ModelError; its own answer is in OriginalMessage.
        error = err.response.get("Error", {})
        message = f"{endpoint}: {error.get('Code', 'error')}: {error.get('Message', err)}"
        if "OriginalMessage" in err.response:
            message += f" (the model answered {err.response.get('OriginalStatusCode', '?')}: {err.response['OriginalMessage']})"
        raise EndpointError(message) from err
    return response.get("ContentType", ""), response["Body"].read()


def add_endpoint_arguments(parser: Any) -> None:
    parser.add_argument("--endpoint-name", required=True, help="the SageMaker endpoint's name")
    parser.add_argument("--region", help="AWS region (default: the usual boto3 resolution)")
    from ml_tools.cold_start import add_cold_start_arguments

    add_cold_start_arguments(parser)  # --inference-component, --cold-start-wait (endpoints scaled to zero)
