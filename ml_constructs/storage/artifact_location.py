"""A prefix in a bucket, with least-privilege grants scoped to that prefix."""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ml_constructs import nag

READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
DELETE_ACTIONS = ("s3:DeleteObject",)


@dataclass(frozen=True)
class ArtifactLocation:
    """``s3://<bucket>/<prefix>``: what a workload may read or write, and nothing more.

    Grants never use wildcard actions. Objects are granted as ``<bucket>/<prefix>*``
    (S3 has no other way to name "everything under a prefix"), listing is allowed
    on the bucket only for keys under the prefix (``s3:prefix`` condition), and
    the bucket's KMS key, if any, only through S3 (``kms:ViaService``). The one
    unavoidable cdk-nag finding (IAM5 on the object wildcard) is acknowledged on
    the grantee with the exact finding id.
    """

    bucket: s3.IBucket
    prefix: str
    description: str
    key: kms.IKey | None = None

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/") or self.prefix.startswith("/"):
            raise ValueError(f"ArtifactLocation prefix must end with '/' and not start with one, got {self.prefix!r}")

    @property
    def s3_url(self) -> str:
        """``s3://bucket/prefix/`` (a token when the bucket name is one)."""
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"

    def url_for(self, relative_key: str) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}{relative_key}"

    def objects_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{self.prefix}*")

    def child(self, name: str, description: str | None = None) -> "ArtifactLocation":
        """A nested location, ``<prefix><name>/``, for narrower grants."""
        return ArtifactLocation(self.bucket, f"{self.prefix}{name.strip('/')}/", description or self.description, self.key)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Get and list objects under the prefix (and decrypt them)."""
        return self._grant(grantee, READ_ACTIONS, decrypt_only=True)

    def grant_read_object(self, grantee: iam.IGrantable, relative_key: str) -> iam.Grant:
        """Get one object under the prefix (and decrypt it): no wildcard, no listing."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(READ_ACTIONS), resource_arns=[self.bucket.arn_for_objects(self.prefix + relative_key)]
        )
        self._grant_key(grantee, decrypt_only=True)
        return grant

    def grant_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Put objects under the prefix (no read, no delete)."""
        return self._grant(grantee, WRITE_ACTIONS, decrypt_only=False, listing=False)

    def grant_read_write(self, grantee: iam.IGrantable, *, allow_delete: bool = False) -> iam.Grant:
        """Get, list and put objects under the prefix; delete only if asked."""
        actions = READ_ACTIONS + WRITE_ACTIONS + (DELETE_ACTIONS if allow_delete else ())
        return self._grant(grantee, actions, decrypt_only=False)

    def _grant(
        self, grantee: iam.IGrantable, actions: tuple[str, ...], *, decrypt_only: bool, listing: bool = True
    ) -> iam.Grant:
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[self.objects_arn()])
        if listing:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["s3:ListBucket"],
                resource_arns=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self.prefix}*"]}},
            )
        self._grant_key(grantee, decrypt_only=decrypt_only)
        principal = grantee.grant_principal
        if isinstance(principal, Construct):
            nag.acknowledge_wildcard_resources(
                principal,
                [self.objects_arn()],
                f"Access is limited to objects under the '{self.prefix}' prefix of the {self.description} "
                "bucket; S3 can only name the objects under a prefix with a trailing wildcard.",
            )
        return grant

    def _grant_key(self, grantee: iam.IGrantable, *, decrypt_only: bool) -> None:
        """The bucket's KMS key, only through S3."""
        if self.key is None:
            return
        region = cdk.Stack.of(self.bucket).region
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["kms:Decrypt"] if decrypt_only else ["kms:Decrypt", "kms:GenerateDataKey"],
            resource_arns=[self.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.{cdk.Aws.URL_SUFFIX}"}},
        )
