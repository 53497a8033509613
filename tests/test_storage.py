"""ArtifactStorage: secure defaults, lifecycle, removal policy, prefix-scoped grants."""
from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from ml_constructs.nag import flatten_reference
from ml_constructs.storage import ArtifactStorage, ArtifactStorageProps
from tests.helpers import new_app, new_checked_app, policy_statements, resources_of_type


def storage_template(**props) -> tuple[Template, dict]:
    stack = cdk.Stack(new_app(), "S")
    ArtifactStorage(stack, "Storage", props=ArtifactStorageProps(**props))
    template = Template.from_stack(stack)
    return template, template.to_json()


@pytest.fixture(scope="module")
def kms_storage():
    return storage_template(encryption="kms", retain_data=True)


def bucket_by_id(template: dict, fragment: str) -> dict:
    (found,) = [v for k, v in resources_of_type(template, "AWS::S3::Bucket").items() if fragment in k]
    return found


def test_four_buckets_and_one_rotating_key(kms_storage):
    template, raw = kms_storage
    template.resource_count_is("AWS::S3::Bucket", 4)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_every_bucket_blocks_public_access_and_disables_acls(kms_storage):
    _, raw = kms_storage
    for bucket in resources_of_type(raw, "AWS::S3::Bucket").values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_every_bucket_denies_insecure_transport_and_old_tls(kms_storage):
    _, raw = kms_storage
    policies = resources_of_type(raw, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        conditions = [s["Condition"] for s in denies]
        assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
        assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions


def test_artifact_buckets_use_the_kms_key_and_logs_use_sse_s3(kms_storage):
    _, raw = kms_storage
    for name in ("Models", "CompileCache", "Training"):
        rule = bucket_by_id(raw, name)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"]
        assert rule["BucketKeyEnabled"] is True
    logs = bucket_by_id(raw, "AccessLogs")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert logs["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_s3_managed_encryption_creates_no_key():
    template, raw = storage_template(encryption="s3")
    template.resource_count_is("AWS::KMS::Key", 0)
    algo = bucket_by_id(raw, "Models")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert algo["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_models_and_training_are_versioned_cache_is_not(kms_storage):
    _, raw = kms_storage
    assert bucket_by_id(raw, "Models")["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket_by_id(raw, "Training")["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "VersioningConfiguration" not in bucket_by_id(raw, "CompileCache")["Properties"]


def test_artifact_buckets_log_to_the_logs_bucket_under_their_own_prefix(kms_storage):
    _, raw = kms_storage
    logs_id = next(k for k in resources_of_type(raw, "AWS::S3::Bucket") if "AccessLogs" in k)
    for name in ("Models", "CompileCache", "Training"):
        logging = bucket_by_id(raw, name)["Properties"]["LoggingConfiguration"]
        assert logging == {"DestinationBucketName": {"Ref": logs_id}, "LogFilePrefix": f"{name}/"}


def rules(raw: dict, name: str) -> dict[str, dict]:
    return {r["Id"]: r for r in bucket_by_id(raw, name)["Properties"]["LifecycleConfiguration"]["Rules"]}


def test_lifecycle_rules_follow_the_props():
    _, raw = storage_template(
        abort_incomplete_multipart_upload_days=3,
        noncurrent_version_expiration_days=11,
        compile_cache_expiration_days=21,
        access_logs_expiration_days=400,
    )
    for name in ("Models", "CompileCache", "Training", "AccessLogs"):
        abort = rules(raw, name)["AbortIncompleteMultipartUploads"]
        assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    for name in ("Models", "Training"):
        assert rules(raw, name)["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 11}
        assert rules(raw, name)["RemoveExpiredDeleteMarkers"]["ExpiredObjectDeleteMarker"] is True
    cache = rules(raw, "CompileCache")["ExpireOldCacheEntries"]
    assert (cache["ExpirationInDays"], cache["Prefix"]) == (21, "neuron-cache/")
    assert rules(raw, "AccessLogs")["ExpireLogs"]["ExpirationInDays"] == 400


def test_retain_data_keeps_buckets_and_key(kms_storage):
    template, raw = kms_storage
    for resource in list(resources_of_type(raw, "AWS::S3::Bucket").values()) + list(
        resources_of_type(raw, "AWS::KMS::Key").values()
    ):
        assert resource["DeletionPolicy"] == "Retain"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_disposable_storage_is_emptied_and_deleted_with_the_stack():
    template, raw = storage_template(retain_data=False, encryption="kms")
    for resource in list(resources_of_type(raw, "AWS::S3::Bucket").values()) + list(
        resources_of_type(raw, "AWS::KMS::Key").values()
    ):
        assert resource["DeletionPolicy"] == "Delete"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 4)


def grant_template(method: str, **kwargs) -> tuple[dict, list[dict]]:
    app = new_checked_app()
    stack = cdk.Stack(app, "S")
    storage = ArtifactStorage(stack, "Storage")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    getattr(storage.locations.checkpoints, method)(role, **kwargs)
    raw = Template.from_stack(stack).to_json()  # raises if cdk-nag finds anything unacknowledged
    return raw, policy_statements(raw)


def test_grant_read_is_scoped_to_the_prefix_without_wildcard_actions():
    raw, statements = grant_template("grant_read")
    by_action = {json.dumps(s["Action"]): s for s in statements}
    get = by_action['"s3:GetObject"']
    assert flatten_reference(get["Resource"]).endswith("/checkpoints/*")
    listing = by_action['"s3:ListBucket"']
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["checkpoints/*"]}}
    assert by_action['"kms:Decrypt"']["Condition"]["StringEquals"]["kms:ViaService"]
    assert not any("*" in a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))


def test_grant_read_write_adds_put_but_delete_only_on_request():
    _, statements = grant_template("grant_read_write")
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey"} <= actions
    assert "s3:DeleteObject" not in actions
    _, statements = grant_template("grant_read_write", allow_delete=True)
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:DeleteObject" in actions


def test_grant_write_cannot_read_or_list():
    _, statements = grant_template("grant_write")
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:GetObject" not in actions and "s3:ListBucket" not in actions and "s3:PutObject" in actions


def test_grants_across_stacks_use_stable_exports_and_stay_nag_clean(tmp_path):
    from config import load_config
    from stacks.storage_stack import ArtifactStorageStack

    app = new_checked_app(tmp_path)
    cfg = load_config("prod")
    storage = ArtifactStorageStack(app, "Store", storage=cfg.storage, retain_data=True)
    consumer = cdk.Stack(app, "Consumer")
    role = iam.Role(consumer, "Role", assumed_by=iam.ServicePrincipal("batch.amazonaws.com"))
    locations = storage.locations_for(consumer)
    assert storage.locations_for(consumer) is locations
    locations.compile_cache.grant_read_write(role)
    assembly = app.synth()  # cdk-nag runs here: the IAM5 finding must be acknowledged exactly
    consumer_template = assembly.get_stack_by_name("Consumer").template
    resources = [flatten_reference(s["Resource"]) for s in policy_statements(consumer_template)]
    assert "Store-CompileCacheBucketArn/neuron-cache/*" in resources
    assert "Store-CompileCacheBucketArn" in resources
    assert "Store" in assembly.get_stack_by_name("Consumer").dependencies[0].id


def test_location_prefix_must_end_with_slash():
    from ml_constructs.storage import ArtifactLocation

    stack = cdk.Stack(new_app(), "S")
    storage = ArtifactStorage(stack, "Storage")
    with pytest.raises(ValueError, match="must end with '/'"):
        ArtifactLocation(storage.models_bucket, "weights", "models")
    assert storage.locations.model_weights.child("bloom-176b").prefix == "weights/bloom-176b/"


def test_grant_read_object_names_one_object_and_no_listing():
    app = new_checked_app()
    stack = cdk.Stack(app, "S")
    storage = ArtifactStorage(stack, "Storage")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    storage.locations.model_packages.grant_read_object(role, "opt/model.tar.gz")
    statements = policy_statements(Template.from_stack(stack).to_json())  # nag: nothing to acknowledge
    (get,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert flatten_reference(get["Resource"]).endswith("/packages/opt/model.tar.gz")
    assert not [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert [s for s in statements if s["Action"] == "kms:Decrypt"]
