"""The base class of the platform's stacks."""
from __future__ import annotations

import aws_cdk as cdk

# How many of the region's AZs a stack may spread over when none is configured.
DEFAULT_AZ_COUNT = 2


class PlatformStack(cdk.Stack):
    """A stack that never looks up availability zones.

    With a pinned account and region, ``Stack.availability_zones`` is a context
    lookup (it needs AWS credentials at synth, and synth here must work without
    them). The platform answers with the region's first AZs as deploy-time values
    (``Fn::Select`` over ``Fn::GetAZs``), exactly what an environment-agnostic stack
    gets; constructs that need a particular AZ take it from configuration.
    """

    @property
    def availability_zones(self) -> list[str]:
        return [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(DEFAULT_AZ_COUNT)]
