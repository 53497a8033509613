"""Every AWS call preflight makes, the IAM action each needs, and the policy that allows exactly those.

:data:`CALLS` is enforced: the clients preflight uses refuse any operation not listed here
(:func:`guard`), so the policy printed by ``python -m ml_tools preflight --print-policy``, the one
in docs/first-deploy.md and the CI role of the bootstrap app cannot fall behind the code.
Every call is read-only.
"""
from __future__ import annotations

from typing import Any

# (botocore service name, operation) -> IAM action
CALLS: dict[tuple[str, str], str] = {
    ("sts", "GetCallerIdentity"): "sts:GetCallerIdentity",
    ("ssm", "GetParameter"): "ssm:GetParameter",
    ("service-quotas", "ListServiceQuotas"): "servicequotas:ListServiceQuotas",
    ("service-quotas", "GetServiceQuota"): "servicequotas:GetServiceQuota",
    # A quota never raised has no applied value (ListServiceQuotas leaves it out): its AWS default applies.
    ("service-quotas", "ListAWSDefaultServiceQuotas"): "servicequotas:ListAWSDefaultServiceQuotas",
    ("service-quotas", "GetAWSDefaultServiceQuota"): "servicequotas:GetAWSDefaultServiceQuota",
    ("ec2", "DescribeAvailabilityZones"): "ec2:DescribeAvailabilityZones",
    ("ec2", "DescribeInstanceTypeOfferings"): "ec2:DescribeInstanceTypeOfferings",
    ("ec2", "DescribeSubnets"): "ec2:DescribeSubnets",
    ("ec2", "DescribeImages"): "ec2:DescribeImages",
    ("ecr", "BatchGetImage"): "ecr:BatchGetImage",
    ("cloudformation", "DescribeStacks"): "cloudformation:DescribeStacks",
    # A manifest's presence by listing its key: ListBucket reads names, never an object's content.
    ("s3", "ListObjectsV2"): "s3:ListBucket",
}
# Actions without resource-level permissions (the service authorizes them on "*" only).
_ACCOUNT_WIDE = ("sts:GetCallerIdentity", "servicequotas:ListServiceQuotas", "servicequotas:GetServiceQuota",
                 "servicequotas:ListAWSDefaultServiceQuotas", "servicequotas:GetAWSDefaultServiceQuota",
                 "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeSubnets",
                 "ec2:DescribeImages")


class UnlistedCall(RuntimeError):
    """Preflight tried an AWS operation its policy does not list (a bug: add it to CALLS)."""


def guard(client: Any) -> Any:
    """Make ``client`` refuse every operation not in :data:`CALLS`, before anything is sent."""
    service = client.meta.service_model.service_name

    def check(model: Any, **_: Any) -> None:
        if (service, model.name) not in CALLS:
            raise UnlistedCall(f"preflight called {service}:{model.name}, which its IAM policy does not list")

    client.meta.events.register("before-parameter-build.*.*", check)
    return client


def policy_statements(*, partition: str, account: str, region: str, stacks: str, qualifier: str,
                      ecr_repositories: list[str], extra_buckets: list[str] = ()) -> list[dict]:
    """The statements of the preflight policy of one environment (IAM JSON, ``Sid`` first); ``stacks`` is the
    name prefix of its stacks, ``<stack_prefix>-<environment>-``."""
    arn = f"arn:{partition}:%s:{region}:{account}:%s"
    # CloudFormation names the Storage stack's buckets <stack name, lower case>-<logical id>-<suffix>.
    buckets = [f"{stacks}Storage".lower() + "-*", *extra_buckets]
    statements = [
        {"Sid": "ReadAccountFacts", "Effect": "Allow", "Action": sorted(_ACCOUNT_WIDE), "Resource": "*"},
        {"Sid": "ReadCdkBootstrapVersion", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": arn % ("ssm", f"parameter/cdk-bootstrap/{qualifier}/version")},
        {"Sid": "ReadEnvironmentStacks", "Effect": "Allow", "Action": "cloudformation:DescribeStacks",
         "Resource": arn % ("cloudformation", f"stack/{stacks}*/*")},
        {"Sid": "FindStagedManifests", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": sorted(f"arn:{partition}:s3:::{bucket}" for bucket in buckets)},
        # AWS's Deep Learning Containers (a registry account per region) by name, and this account's own
        # repositories in the region (images named by image_uri).
        {"Sid": "CheckImagesExist", "Effect": "Allow", "Action": "ecr:BatchGetImage",
         "Resource": sorted({f"arn:{partition}:ecr:*:*:repository/{name}" for name in ecr_repositories}
                            | {arn % ("ecr", "repository/*")})},
    ]
    covered = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert covered == set(CALLS.values()), "every listed call has a statement"
    return statements


def policy_document(**kwargs: Any) -> dict:
    return {"Version": "2012-10-17", "Statement": policy_statements(**kwargs)}


def known_repositories(cfg: Any = None) -> list[str]:
    """ECR repository names preflight may read: every runtime profile's image and base image, and the
    environment's own image URIs (``cfg``)."""
    from runtime_profiles import all_profiles

    from ml_tools.preflight.needs import parse_image

    names = set()
    for profile in all_profiles():
        names.add(profile.image_repository)
        base = parse_image("", str(profile.settings.get("base_image", "")))
        if base.repository:
            names.add(base.repository)
    if cfg is not None:
        for uri in (cfg.multi_model.image_uri, cfg.training.image_uri, cfg.stable_diffusion.compile.image):
            image = parse_image("", uri or "")
            if image.repository:
                names.add(image.repository)
            elif uri and ":" in uri:
                names.add(uri.rpartition(":")[0])
    return sorted(names)
