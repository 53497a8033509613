"""``invoke-sd --async``: submit one request to an asynchronous endpoint, wait with progress, fetch the image.

1. The request body is uploaded next to the endpoint's results: the endpoint config's
   ``S3OutputPath`` ends in ``responses/``; requests go to the sibling ``requests/`` prefix
   (the layout ``AsyncInference`` creates), unless ``--input-location`` names another prefix.
2. ``InvokeEndpointAsync`` queues it and answers where the result or the failure will appear.
3. The tool polls those two S3 objects until one exists or ``--timeout`` passes (an endpoint
   at zero instances first scales out: minutes), printing progress, and saves the image.
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ml_tools.runtime import EndpointError

DEFAULT_TIMEOUT_S = 1800.0
POLL_S = 5.0


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise EndpointError(f"got {url!r}, expected s3://bucket/key")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def request_prefix(sagemaker: Any, endpoint_name: str) -> str:
    """``s3://bucket/.../requests/`` beside the endpoint's ``S3OutputPath`` (``.../responses/``)."""
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    output = config.get("AsyncInferenceConfig", {}).get("OutputConfig", {}).get("S3OutputPath")
    if not output:
        raise EndpointError(f"{endpoint_name}: not an asynchronous endpoint (its config has no AsyncInferenceConfig)")
    if not output.rstrip("/").endswith("responses"):
        raise EndpointError(f"{endpoint_name}: results go to {output}; pass --input-location s3://bucket/prefix/ for "
                            "the requests (a prefix the endpoint's role can read)")
    return output.rstrip("/")[: -len("responses")] + "requests/"


def _exists(s3: Any, url: str) -> bool:
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_url(url)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def submit_and_wait(
    *,
    runtime: Any,
    s3: Any,
    endpoint_name: str,
    payload: Any,
    input_prefix: str,
    accept: str = "image/png",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> tuple[str, bytes, float]:
    """Upload, invoke, poll; returns (content type, result body, seconds waited). EndpointError on failure."""
    from botocore.exceptions import ClientError

    bucket, prefix = parse_s3_url(input_prefix if input_prefix.endswith("/") else input_prefix + "/")
    key = f"{prefix}{uuid.uuid4()}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(payload).encode(), ContentType="application/json")
    try:
        answer = runtime.invoke_endpoint_async(EndpointName=endpoint_name, InputLocation=f"s3://{bucket}/{key}",
                                               ContentType="application/json", Accept=accept)
    except ClientError as err:
        error = err.response.get("Error", {})
        raise EndpointError(f"{endpoint_name}: {error.get('Code', 'error')}: {error.get('Message', err)}") from err
    output, failure = answer["OutputLocation"], answer.get("FailureLocation")
    progress(f"queued as {answer.get('InferenceId', '?')}; result will appear at {output}")
    start = clock()
    while True:
        waited = clock() - start
        if _exists(s3, output):
            bucket_out, key_out = parse_s3_url(output)
            got = s3.get_object(Bucket=bucket_out, Key=key_out)
            return got.get("ContentType", ""), got["Body"].read(), waited
        if failure and _exists(s3, failure):
            bucket_fail, key_fail = parse_s3_url(failure)
            reason = s3.get_object(Bucket=bucket_fail, Key=key_fail)["Body"].read()[:500]
            raise EndpointError(f"{endpoint_name}: the request failed after {waited:.0f} s: {reason!r}")
        if waited >= timeout_s:
            raise EndpointError(f"{endpoint_name}: no result after {waited:.0f} s (--timeout {timeout_s:.0f}); it may "
                                f"still arrive at {output}")
        progress(f"waiting {waited:.0f} s (queued; an endpoint at zero instances first scales out, minutes)")
        sleep(poll_s)


def run_async(args: Any, payload: Any, decode: Callable[[str, bytes], bytes], *, accept: str = "image/png",
              runtime: Any = None, s3: Any = None, sagemaker: Any = None, **wait: Any) -> int:
    """The ``invoke-sd --async`` flow; ``decode`` turns (content type, body) into image bytes."""
    import boto3

    runtime = runtime or boto3.client("sagemaker-runtime", region_name=args.region)
    s3 = s3 or boto3.client("s3", region_name=args.region)
    prefix = args.input_location or request_prefix(sagemaker or boto3.client("sagemaker", region_name=args.region),
                                                   args.endpoint_name)
    content_type, body, waited = submit_and_wait(runtime=runtime, s3=s3, endpoint_name=args.endpoint_name,
                                                 payload=payload, input_prefix=prefix, accept=accept,
                                                 timeout_s=args.timeout, **wait)
    try:
        data = decode(content_type, body)
    except ValueError as err:
        print(f"invoke-sd: {err}", file=sys.stderr)
        return 1
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    print(f"saved {output} ({len(data)} bytes) after {waited:.0f} s")
    return 0


def add_async_arguments(parser: Any) -> None:
    parser.add_argument("--async", dest="use_async", action="store_true",
                        help="submit to an asynchronous endpoint, wait for the result in S3")
    parser.add_argument("--input-location", help="with --async: s3:// prefix for the request (default: beside the "
                        "endpoint's results)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="with --async: seconds to wait")
