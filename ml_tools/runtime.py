"""SageMaker runtime calls shared by the invocation tools and the load test."""
from __future__ import annotations

import json
from typing import Any


def runtime_client(region: str | None = None) -> Any:
    import boto3

    return boto3.client("sagemaker-runtime", region_name=region)


def invoke_json(client: Any, endpoint: str, payload: Any, *, target_model: str | None = None,
                accept: str = "application/json") -> tuple[str, bytes]:
    """POST ``payload`` as JSON; returns (content type, body bytes)."""
    kwargs = {"TargetModel": target_model} if target_model else {}
    response = client.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Accept=accept, Body=json.dumps(payload), **kwargs
    )
    return response.get("ContentType", ""), response["Body"].read()


def add_endpoint_arguments(parser: Any) -> None:
    parser.add_argument("--endpoint-name", required=True, help="the SageMaker endpoint's name")
    parser.add_argument("--region", help="AWS region (default: the usual boto3 resolution)")
