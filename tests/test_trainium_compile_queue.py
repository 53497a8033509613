"""The Neuron compile queue's compute environment: a deploy must not stop a running compile."""
from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from ml_constructs.neuron_compile.compute import CompileQueue
from tests.helpers import new_app


def compile_queue(job_timeout: cdk.Duration) -> Template:
    stack = cdk.Stack(new_app(), "Compile")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1)
    CompileQueue(stack, "Queue", vpc=vpc, vpc_subnets=None, instance_type="inf2.8xlarge", root_volume_gib=200,
                 runnable_time_limit=cdk.Duration.minutes(30), job_timeout=job_timeout)
    return Template.from_stack(stack)


def test_infrastructure_updates_wait_for_the_compile_job_timeout():
    (ce,) = compile_queue(cdk.Duration.hours(5)).find_resources("AWS::Batch::ComputeEnvironment").values()
    assert ce["Properties"]["UpdatePolicy"] == {"JobExecutionTimeoutMinutes": 300, "TerminateJobsOnUpdate": False}
    assert ce["Properties"]["ReplaceComputeEnvironment"] is False


def test_a_job_timeout_no_update_can_wait_for_is_refused():
    with pytest.raises(ValueError, match="job_timeout: got 7260 min, at most 7200 min"):
        compile_queue(cdk.Duration.hours(121))
