"""Where a model's files come from, and how its role may read them.

Three forms, matching SageMaker's container definition:
  - a ``model.tar.gz`` built from a ``model_packages/`` folder (``from_asset``);
  - a ``model.tar.gz`` already in S3 (``from_s3_object``, or ``from_s3_url`` for a literal URL);
  - an uncompressed S3 prefix (``from_s3_prefix``): ``ModelDataSource`` with
    ``S3DataType=S3Prefix`` and ``CompressionType=None``; SageMaker copies the
    files as they are, without creating or extracting a tarball (hundreds of
    GB load in minutes instead of hours). The URI must end with ``/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ml_constructs import nag

from ml_constructs.packaging import ModelPackageAsset
from ml_constructs.storage import ArtifactLocation

Kind = Literal["tarball", "uncompressed_prefix", "model_prefix"]


@dataclass(frozen=True)
class ModelData:
    """The model's files: a URL, its kind, and a least-privilege read grant."""

    url: str
    kind: Kind
    _grant: Callable[[iam.IGrantable], Any]

    @classmethod
    def from_asset(cls, asset: ModelPackageAsset) -> "ModelData":
        """The packaged folder (``s3:GetObject`` on that one object only)."""
        return cls(asset.s3_object_url, "tarball", asset.grant_read)

    @classmethod
    def from_s3_object(cls, location: ArtifactLocation, relative_key: str) -> "ModelData":
        """A ``.tar.gz`` under an artifact location (``s3:GetObject`` on that one object only)."""
        return cls(location.url_for(relative_key), "tarball", lambda g: location.grant_read_object(g, relative_key))

    @classmethod
    def from_s3_url(cls, url: str, *, uncompressed: bool = False) -> "ModelData":
        """A literal ``s3://bucket/key.tar.gz`` (or, ``uncompressed``, ``s3://bucket/prefix/``) outside the platform.

        Read is granted on that one object, or on that prefix only.
        """
        bucket, key = parse_s3_url(url)
        if uncompressed:
            return cls(url, "uncompressed_prefix", lambda g: grant_read_s3_url(g, url))

        def grant_object(grantee: iam.IGrantable) -> None:
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["s3:GetObject"], resource_arns=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}"]
            )

        return cls(url, "tarball", grant_object)

    @classmethod
    def from_s3_prefix(cls, location: ArtifactLocation) -> "ModelData":
        """Uncompressed files under ``location`` (ModelDataSource S3Prefix, CompressionType None)."""
        return cls(location.s3_url, "uncompressed_prefix", location.grant_read)

    @classmethod
    def multi_model_prefix(cls, location: ArtifactLocation) -> "ModelData":
        """A multi-model endpoint's prefix: one ``.tar.gz`` per model under it."""
        return cls(location.s3_url, "model_prefix", location.grant_read)

    def grant_read(self, grantee: iam.IGrantable) -> None:
        self._grant(grantee)

    def container_properties(self) -> dict[str, Any]:
        """``ModelDataUrl`` or ``ModelDataSource`` for a container definition."""
        if self.kind == "uncompressed_prefix":
            return {
                "model_data_source": sagemaker.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                        s3_uri=self.url, s3_data_type="S3Prefix", compression_type="None"
                    )
                )
            }
        return {"model_data_url": self.url}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError naming the value otherwise."""
    if not url.startswith("s3://") or "/" not in url[5:] or url[5:].startswith("/"):
        raise ValueError(f"S3 URL: got {url!r}, allowed: s3://<bucket>/<key or prefix>")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def grant_read_s3_url(grantee: iam.IGrantable, url: str) -> None:
    """Read everything under a literal ``s3://bucket/prefix`` (objects and a prefix-limited listing)."""
    bucket, key = parse_s3_url(url)
    objects = f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}*"
    iam.Grant.add_to_principal(grantee=grantee, actions=["s3:GetObject"], resource_arns=[objects])
    iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["s3:ListBucket"],
        resource_arns=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"],
        conditions={"StringLike": {"s3:prefix": [f"{key}*"]}},
    )
    principal = grantee.grant_principal
    if isinstance(principal, Construct):
        nag.acknowledge_wildcard_resources(
            principal, [objects], f"Read access is limited to the objects under the configured URL {url}."
        )
