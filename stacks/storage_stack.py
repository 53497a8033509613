"""The artifact storage stack, and how other stacks receive its locations.

Other stacks get the buckets through exports with stable names (not CDK's
automatic cross-stack references, whose export names carry a hash). Stable
names keep the cdk-nag finding ids of prefix grants predictable, so each can
be acknowledged exactly where the grant is made. The buckets exist in every
configuration, so these exports never go away while imported.

What a configuration change can remove (the platform key with ``storage.encryption = "s3"``,
the alert topic with ``alerts.topic_arn``, the private network) reaches other stacks as weak
references (``Fn::GetStackOutput``): CloudFormation refuses to delete or change an export
another stack imports, and the storage stack deploys first, so a strong reference would
block the change. The ``KeyArn`` and ``AlertTopicArn`` exports stay while the key and topic
exist, unchanged, because stacks deployed by earlier versions import them (docs/operations.md).
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.schema import AlertsConfig, EndpointNetworkConfig, StorageConfig
from ml_constructs.alerts import AlertTopic
from ml_constructs.sagemaker.network import EndpointNetwork
from ml_constructs.storage import ArtifactLocation, ArtifactLocations, ArtifactStorage, ArtifactStorageProps
from stacks.base import PlatformStack

_BUCKETS = {"Models": "models_bucket", "CompileCache": "compile_cache_bucket", "Training": "training_bucket"}


class ArtifactStorageStack(PlatformStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, storage: StorageConfig, retain_data: bool,
        alerts: AlertsConfig | None = None, endpoint_network: EndpointNetworkConfig | None = None, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = ArtifactStorage(
            self,
            "Artifacts",
            props=ArtifactStorageProps(
                encryption=storage.encryption,
                retain_data=retain_data,
                abort_incomplete_multipart_upload_days=storage.abort_incomplete_multipart_upload_days,
                noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                compile_cache_expiration_days=storage.compile_cache_expiration_days,
                access_logs_expiration_days=storage.access_logs_expiration_days,
            ),
        )
        self._imports: dict[str, str] = {}
        for name, attr in _BUCKETS.items():
            bucket: s3.Bucket = getattr(self.storage, attr)
            self._imports[f"{name}BucketArn"] = self.export_value(bucket.bucket_arn, name=self._export(f"{name}BucketArn"))
            self._imports[f"{name}BucketName"] = self.export_value(
                bucket.bucket_name, name=self._export(f"{name}BucketName")
            )
        if self.storage.key is not None:
            # Imported by stacks of earlier versions only; this version's stacks read it weakly (module doc).
            self.export_value(self.storage.key.key_arn, name=self._export("KeyArn"))
        for field, location in vars(self.storage.locations).items():
            cdk.CfnOutput(self, _pascal(field) + "Url", value=location.s3_url, description=f"s3 URL of {field}")
        self._shared: dict[str, ArtifactLocations] = {}
        self._add_alerts(alerts or AlertsConfig(), retain_data)
        network = endpoint_network or EndpointNetworkConfig()
        self.endpoint_network: EndpointNetwork | None = None
        if network.private:
            self.endpoint_network = EndpointNetwork(
                self, "EndpointNetwork", cidr=network.vpc_cidr, log_key=self.storage.key,
                removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
            )

    def _add_alerts(self, alerts: AlertsConfig, retain_data: bool) -> None:
        """The environment's alarm topic: created (encrypted with the platform key, else its own), or given."""
        self.alert_topic: AlertTopic | None = None
        if alerts.topic_arn is not None:
            self.alert_topic_arn = alerts.topic_arn
            if cdk.Token.is_unresolved(self.region):
                # Alarm actions must be in the alarm's region; the deploy fails here first, with this message.
                cdk.CfnRule(self, "AlertTopicInThisRegion", assertions=[cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_equals(cdk.Aws.REGION, alerts.topic_region),
                    assert_description=f"alerts.topic_arn {alerts.topic_arn} is in {alerts.topic_region}; "
                    "deploy to that region or configure a topic of this region (alarm actions are regional)",
                )])
            return
        self.alert_topic = AlertTopic(
            self, "Alerts", key=self.storage.key, emails=alerts.emails,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
        )
        self.alert_topic_arn = self.alert_topic.topic.topic_arn
        # Imported by stacks of earlier versions only; this version's stacks read it weakly (module doc).
        self.export_value(self.alert_topic_arn, name=self._export("AlertTopicArn"))
        cdk.CfnOutput(self, "AlertTopicArn", value=self.alert_topic_arn, description="SNS topic of every alarm")

    def platform_key_arn_for(self, consumer: cdk.Stack) -> str | None:
        """The platform key's ARN as ``consumer`` can reference it; None without a key (storage.encryption = 's3')."""
        if self.storage.key is None:
            return None
        if consumer is self:
            return self.storage.key.key_arn
        consumer.add_stack_dependency(self, "its log groups are encrypted with the platform key")
        return self._weak_key_arn()

    def _weak_key_arn(self) -> str:
        # The L1 attribute: consume_reference takes a resource attribute, not the L2's physical-name token.
        return cdk.Stack.consume_reference(self.storage.key.node.default_child.attr_arn, cdk.ReferenceStrength.WEAK)

    def alert_topic_arn_for(self, consumer: cdk.Stack) -> str:
        """The alarm topic's ARN as ``consumer`` can reference it: the configured ARN, or a weak reference."""
        if self.alert_topic is None or consumer is self:
            return self.alert_topic_arn
        consumer.add_stack_dependency(self, "its alarms notify the storage stack's alert topic")
        return cdk.Stack.consume_reference(self.alert_topic.topic.node.default_child.ref, cdk.ReferenceStrength.WEAK)

    def _export(self, name: str) -> str:
        return f"{self.stack_name}-{name}"

    def locations_for(self, consumer: cdk.Stack) -> ArtifactLocations:
        """The storage locations as seen from ``consumer`` (a stack of the same app).

        Creates imported buckets (and key) in ``consumer`` once and makes it
        depend on this stack.
        """
        key = consumer.node.path
        if key in self._shared:
            return self._shared[key]
        consumer.add_stack_dependency(self, "reads the artifact buckets' exports")
        scope = Construct(consumer, "ArtifactStorage")
        imported_key = (
            kms.Key.from_key_arn(scope, "Key", self._weak_key_arn()) if self.storage.key is not None else None
        )
        buckets = {
            name: s3.Bucket.from_bucket_attributes(
                scope,
                f"{name}Bucket",
                bucket_arn=self._imports[f"{name}BucketArn"],
                bucket_name=self._imports[f"{name}BucketName"],
                encryption_key=imported_key,
            )
            for name in _BUCKETS
        }
        native = self.storage.locations

        def rebind(location: ArtifactLocation, bucket: str) -> ArtifactLocation:
            return ArtifactLocation(buckets[bucket], location.prefix, location.description, imported_key)

        shared = ArtifactLocations(
            model_packages=rebind(native.model_packages, "Models"),
            model_weights=rebind(native.model_weights, "Models"),
            neuron_artifacts=rebind(native.neuron_artifacts, "Models"),
            multi_model_packages=rebind(native.multi_model_packages, "Models"),
            compile_cache=rebind(native.compile_cache, "CompileCache"),
            training_data=rebind(native.training_data, "Training"),
            checkpoints=rebind(native.checkpoints, "Training"),
            training_outputs=rebind(native.training_outputs, "Training"),
        )
        self._shared[key] = shared
        return shared


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
