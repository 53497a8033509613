"""Take a host that failed pre-flight out of service, so Batch's next attempt lands elsewhere.

Retrying on the same broken host (a dead Neuron device, an EFA interface that never came
up) fails the same way until the attempts run out. The node terminates its own EC2
instance: Batch then sees the host gone ("Host EC2 (instance i-...) terminated"), places
the next attempt on a fresh instance, and the compute environment replaces the capacity.
Draining the ECS container instance was the alternative; it leaves the bad host running
and counting against the compute environment's max vCPUs until Batch scales it in, so
the next attempt may find too few nodes (docs/training.md, "Failures and retries").

The job role may terminate only instances carrying the compute environment's cluster tag
(an IAM ``aws:ResourceTag`` condition), so a job cannot stop anything else. The instance
id comes from the instance metadata service (IMDSv2; the launch template allows two hops,
so containers reach it). Any failure here is logged and ignored: the exit code, not this,
decides the retry.
"""
from __future__ import annotations

import logging
import urllib.request
from typing import Any, Callable

LOG = logging.getLogger("trainium_runtime.quarantine")
IMDS = "http://169.254.169.254/latest"


def instance_id_from_imds(timeout: float = 2.0) -> str:
    token_request = urllib.request.Request(
        f"{IMDS}/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    with urllib.request.urlopen(token_request, timeout=timeout) as response:  # noqa: S310 - fixed link-local URL
        token = response.read().decode()
    request = urllib.request.Request(f"{IMDS}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.read().decode().strip()


def take_out_of_service(
    reason: str,
    *,
    ec2: Any = None,
    instance_id: Callable[[], str] = instance_id_from_imds,
) -> str | None:
    """Terminate this host; returns its instance id, or None when that was not possible."""
    try:
        own_id = instance_id()
    except Exception as exc:  # noqa: BLE001 - never let quarantine change the job's outcome
        LOG.error("quarantine: cannot read this host's instance id: %s", exc)
        return None
    if ec2 is None:
        import boto3

        ec2 = boto3.client("ec2")
    LOG.error("quarantine: terminating host %s (%s) so the retry runs elsewhere", own_id, reason)
    try:
        ec2.terminate_instances(InstanceIds=[own_id])
    except Exception as exc:  # noqa: BLE001
        LOG.error("quarantine: could not terminate %s: %s", own_id, exc)
        return None
    return own_id
