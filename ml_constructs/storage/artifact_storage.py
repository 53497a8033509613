"""ArtifactStorage: the buckets every workload reads from and writes to.

Why four buckets and not one with prefixes: versioning, and so what a delete
or overwrite can lose, is a bucket-wide setting. Model artifacts and training
data must survive mistakes (versioned, noncurrent versions expire); the Neuron
compile cache is reproducible and large (unversioned, entries expire because
the cache never evicts); access logs must go to a bucket that is not logged
itself. Within a bucket, each kind of artifact has its own prefix and grants
are scoped to it (see :class:`ArtifactLocation`).

Creates
  - ``logs_bucket``: server access logs of the three others (SSE-S3, as S3
    log delivery requires), expiring after ``access_logs_expiration_days``.
  - ``models_bucket`` (versioned): ``packages/`` model packages, ``weights/``
    model weights, ``neuron-artifacts/`` compiled Neuron artifacts,
    ``multi-model/`` the multi-model endpoint's tarballs.
  - ``compile_cache_bucket`` (unversioned): ``neuron-cache/``, the
    ``NEURON_COMPILE_CACHE_URL`` of training and compile jobs.
  - ``training_bucket`` (versioned): ``datasets/``, ``checkpoints/``, ``outputs/``.
  - ``key``: a customer managed KMS key with rotation, when ``encryption="kms"``.

Default settings (every bucket): public access blocked, ACLs disabled
(bucket owner enforced), SSL-only with TLS 1.2 or newer, encrypted, access
logged, incomplete multipart uploads aborted. ``retain_data=False`` destroys
buckets (emptying them first) and the key with the stack; ``True`` retains them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ml_constructs import compliance, nag
from ml_constructs.storage.artifact_location import ArtifactLocation


@dataclass(frozen=True)
class ArtifactStorageProps:
    """Props of :class:`ArtifactStorage`; defaults are production-safe."""

    encryption: Literal["kms", "s3"] = "kms"
    retain_data: bool = True
    abort_incomplete_multipart_upload_days: int = 7
    noncurrent_version_expiration_days: int = 30
    compile_cache_expiration_days: int = 30
    access_logs_expiration_days: int = 365


@dataclass(frozen=True)
class ArtifactLocations:
    """Every location a workload can be granted, by purpose."""

    model_packages: ArtifactLocation
    model_weights: ArtifactLocation
    neuron_artifacts: ArtifactLocation
    multi_model_packages: ArtifactLocation
    compile_cache: ArtifactLocation
    training_data: ArtifactLocation
    checkpoints: ArtifactLocation
    training_outputs: ArtifactLocation


class ArtifactStorage(Construct):
    """Encrypted, SSL-only, access-logged buckets for ML artifacts (see module docs)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ArtifactStorageProps = ArtifactStorageProps()) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        removal = cdk.RemovalPolicy.RETAIN if props.retain_data else cdk.RemovalPolicy.DESTROY
        self.key: kms.Key | None = None
        if props.encryption == "kms":
            self.key = kms.Key(
                self,
                "Key",
                description="Encrypts ML artifacts: models, compiled Neuron artifacts, caches, training data",
                enable_key_rotation=True,
                removal_policy=removal,
            )
            allow_log_groups(self.key)

        self.logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            **_secure_defaults(removal, props),
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 log delivery cannot write SSE-KMS
            lifecycle_rules=[
                _abort_uploads(props),
                s3.LifecycleRule(id="ExpireLogs", expiration=cdk.Duration.days(props.access_logs_expiration_days)),
            ],
        )
        nag.acknowledge(
            self.logs_bucket,
            "AwsSolutions-S1",
            "This bucket is the access-log destination of the artifact buckets; logging it to itself would loop.",
        )

        self.models_bucket = self._bucket("Models", props, removal, versioned=True)
        self.compile_cache_bucket = self._bucket(
            "CompileCache",
            props,
            removal,
            versioned=False,
            extra_rules=[
                s3.LifecycleRule(
                    id="ExpireOldCacheEntries",
                    prefix="neuron-cache/",
                    expiration=cdk.Duration.days(props.compile_cache_expiration_days),
                )
            ],
        )
        self.training_bucket = self._bucket("Training", props, removal, versioned=True)

        self._acknowledge_nist()

        models, cache, training = self.models_bucket, self.compile_cache_bucket, self.training_bucket
        self.locations = ArtifactLocations(
            model_packages=ArtifactLocation(models, "packages/", "models", self.key),
            model_weights=ArtifactLocation(models, "weights/", "models", self.key),
            neuron_artifacts=ArtifactLocation(models, "neuron-artifacts/", "models", self.key),
            multi_model_packages=ArtifactLocation(models, "multi-model/", "models", self.key),
            compile_cache=ArtifactLocation(cache, "neuron-cache/", "compile cache", self.key),
            training_data=ArtifactLocation(training, "datasets/", "training", self.key),
            checkpoints=ArtifactLocation(training, "checkpoints/", "training", self.key),
            training_outputs=ArtifactLocation(training, "outputs/", "training", self.key),
        )

    def _acknowledge_nist(self) -> None:
        """NIST 800-53 R5 findings that are this storage's design, each where it applies."""
        for bucket in (self.logs_bucket, self.models_bucket, self.compile_cache_bucket, self.training_bucket):
            compliance.acknowledge(
                bucket, "S3BucketReplicationEnabled",
                "One-region platform: objects are stored redundantly across AZs by S3 and the models and training "
                "buckets are versioned; cross-region replication is a disaster-recovery choice of the operator.",
            )
        compliance.acknowledge(
            self.logs_bucket, "S3BucketVersioningEnabled",
            "Access logs are written once by S3 log delivery and expire by lifecycle; versions would only keep "
            "deleted log objects.",
        )
        compliance.acknowledge(
            self.compile_cache_bucket, "S3BucketVersioningEnabled",
            "A Neuron compile cache: every entry is rebuilt by compiling again and expires by lifecycle.",
        )
        compliance.acknowledge(
            self.logs_bucket, "S3DefaultEncryptionKMS",
            "S3 server access log delivery cannot write to a bucket encrypted with SSE-KMS; SSE-S3 encrypts it.",
        )
        if self.key is None:
            for bucket in (self.models_bucket, self.compile_cache_bucket, self.training_bucket):
                compliance.acknowledge(
                    bucket, "S3DefaultEncryptionKMS",
                    "storage.encryption = 's3' in this environment: SSE-S3 encrypts every object without a "
                    "customer managed key (use 'kms' where a key is required).",
                )

    def _bucket(
        self,
        construct_id: str,
        props: ArtifactStorageProps,
        removal: cdk.RemovalPolicy,
        *,
        versioned: bool,
        extra_rules: list[s3.LifecycleRule] | None = None,
    ) -> s3.Bucket:
        rules = [_abort_uploads(props)]
        if versioned:
            rules.append(
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=cdk.Duration.days(props.noncurrent_version_expiration_days),
                )
            )
            rules.append(s3.LifecycleRule(id="RemoveExpiredDeleteMarkers", expired_object_delete_marker=True))
        encryption = (
            {"encryption": s3.BucketEncryption.KMS, "encryption_key": self.key, "bucket_key_enabled": True}
            if self.key is not None
            else {"encryption": s3.BucketEncryption.S3_MANAGED}
        )
        return s3.Bucket(
            self,
            construct_id,
            **_secure_defaults(removal, props),
            **encryption,
            versioned=versioned,
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix=f"{construct_id}/",
            lifecycle_rules=rules + (extra_rules or []),
        )


def _secure_defaults(removal: cdk.RemovalPolicy, props: ArtifactStorageProps) -> dict:
    """Settings every bucket of the platform shares."""
    return {
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "removal_policy": removal,
        "auto_delete_objects": not props.retain_data,
    }


def _abort_uploads(props: ArtifactStorageProps) -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id="AbortIncompleteMultipartUploads",
        abort_incomplete_multipart_upload_after=cdk.Duration.days(props.abort_incomplete_multipart_upload_days),
    )


def allow_log_groups(key: kms.Key) -> None:
    """Let CloudWatch Logs encrypt this account's and region's log groups with ``key``.

    Log groups in any stack of the platform can then use the platform key (an
    imported key's policy cannot be changed from another stack).
    """
    stack = cdk.Stack.of(key)
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="CloudWatchLogsOfThisAccount",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")],
        actions=["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        resources=["*"],  # in a key policy, "*" is this key
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}},
    ))
