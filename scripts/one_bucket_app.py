"""Baseline for scripts/bench_synth.py: the smallest app with the same toolchain
(jsii, aws-cdk-lib, cdk-nag, template validation): one secure bucket."""
import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

app = cdk.App()
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
stack = cdk.Stack(app, "OneBucket")
bucket = s3.Bucket(stack, "Bucket", enforce_ssl=True, server_access_logs_prefix="logs/")
app.synth()
