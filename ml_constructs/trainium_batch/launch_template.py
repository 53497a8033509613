"""Launch template for Trainium hosts: one EFA interface per network card, the EFA driver in user data."""
from __future__ import annotations

from typing import Literal, get_args

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from ml_constructs.trainium_batch.instances import TrainiumInstance


EfaSoftware = Literal["install-at-boot", "in-ami"]
EFA_SOFTWARE: tuple[str, ...] = get_args(EfaSoftware)

# The ECS-optimized AL2023 Neuron AMI installs the Neuron driver and tools but no EFA software
# (aws/amazon-ecs-ami al2023.pkr.hcl: the al2023neu build has no EFA step), and a container
# with EFA devices in its job definition fails to start when /dev/infiniband/uverbs* are
# missing. Like AWS's Neuron-on-Batch sample (aws-neuron-samples torch-neuronx/training/
# aws-batch), "install-at-boot" hosts install it: the minimal install (kernel module and
# rdma-core; the training image brings its own libfabric), verified with the installer's GPG
# key, and only where the devices are not there already, so an AMI that does carry EFA is left
# alone. That download (efa-installer.amazonaws.com) and the kernel module's OS packages need
# internet egress: the config refuses install-at-boot without a NAT gateway. "in-ami" hosts
# only check the devices.
# A failure prints one EFA_SETUP_FAILED line (cloud-init's log and the instance's console
# output) and leaves the host up: the job's container then fails to start and the job fails
# once, visibly (docs/training.md). The host never shuts itself down here: a deterministic
# failure would relaunch trn1 hosts forever.
# Batch accepts launch-template user data only as a MIME multi-part document.
USER_DATA_BOUNDARY = "==TRAINIUM-EFA=="
FAILED_MARKER = "EFA_SETUP_FAILED"
_REPORT = f"""report() {{ echo "{FAILED_MARKER}: $1 (docs/training.md, What the first deploy checks on a host)" | tee /dev/console >&2; }}
"""
_INSTALL = f"""{_REPORT}trap 'report "aws-efa-installer failed at line $LINENO"' ERR
if ls /dev/infiniband/uverbs* >/dev/null 2>&1; then
  echo "EFA devices present: not installing aws-efa-installer"
  exit 0
fi
work=$(mktemp -d)
cd "$work"
for file in aws-efa-installer-latest.tar.gz aws-efa-installer-latest.tar.gz.sig aws-efa-installer.key; do
  curl -fsSLO --retry 5 --retry-connrefused --connect-timeout 10 "https://efa-installer.amazonaws.com/$file"
done
gpg --import aws-efa-installer.key
gpg --verify aws-efa-installer-latest.tar.gz.sig aws-efa-installer-latest.tar.gz
tar -xf aws-efa-installer-latest.tar.gz
cd aws-efa-installer
./efa_installer.sh -y --minimal
ls /dev/infiniband/uverbs*
"""
_CHECK = f"""{_REPORT}if ! ls /dev/infiniband/uverbs* >/dev/null 2>&1; then
  report "no /dev/infiniband/uverbs* although efa_software is in-ami"
  exit 1
fi
echo "EFA devices present (in-ami)"
"""


def efa_user_data(efa_software: EfaSoftware) -> str:
    """The hosts' user data (MIME multi-part): install EFA at boot, or check that the AMI has it."""
    if efa_software not in EFA_SOFTWARE:
        raise ValueError(f"efa_software: got {efa_software!r}, allowed: {', '.join(map(repr, EFA_SOFTWARE))}")
    script = _INSTALL if efa_software == "install-at-boot" else _CHECK
    return f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="{USER_DATA_BOUNDARY}"

--{USER_DATA_BOUNDARY}
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
set -euxo pipefail
{script}--{USER_DATA_BOUNDARY}--
"""


def efa_network_interfaces(
    instance: TrainiumInstance, security_group_id: str
) -> list[ec2.CfnLaunchTemplate.NetworkInterfaceProperty]:
    """One EFA interface per network card: card 0 is the primary (device index 0),
    cards 1..N-1 attach as device index 1 (docs/aws-limits.md: AWS Batch on Trainium)."""
    return [
        ec2.CfnLaunchTemplate.NetworkInterfaceProperty(
            network_card_index=card,
            device_index=0 if card == 0 else 1,
            interface_type="efa",
            groups=[security_group_id],
            delete_on_termination=True,
        )
        for card in range(instance.efa_interfaces)
    ]


class EfaLaunchTemplate(Construct):
    """An EC2 launch template for Batch-managed Trainium hosts.

    Creates an ``AWS::EC2::LaunchTemplate`` with:
      - one EFA interface per network card (8 on trn1.32xlarge, 16 on trn1n.32xlarge), each
        in ``security_group``; there are no template-level security groups, because EC2 does
        not allow both;
      - user data (MIME multi-part, as Batch requires, :func:`efa_user_data`): with
        ``efa_software="install-at-boot"`` (default) it installs the EFA driver
        (``aws-efa-installer --minimal``) where the AMI has no EFA devices, which needs internet
        egress (a NAT gateway); with ``"in-ami"`` it only checks the devices. A failure logs
        ``EFA_SETUP_FAILED`` to the console and never shuts the host down;
      - IMDSv2 required (hop limit 2 so containers behind the ECS bridge can still reach it);
      - an encrypted gp3 root volume of ``root_volume_gib``;
      - optionally a targeted On-Demand Capacity Reservation.

    aws-cdk-lib's ``ec2.LaunchTemplate`` cannot express network cards or EFA interfaces,
    so this is the L1 ``CfnLaunchTemplate``.

    Attributes: ``resource`` (the L1), ``launch_template`` (an ``ILaunchTemplate`` for the
    compute environment), ``latest_version_number`` (to pin the compute environment to).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        instance: TrainiumInstance,
        security_group: ec2.ISecurityGroup,
        root_volume_gib: int = 200,
        capacity_reservation_id: str | None = None,
        efa_software: EfaSoftware = "install-at-boot",
    ) -> None:
        super().__init__(scope, construct_id)
        user_data = efa_user_data(efa_software)
        if not cdk.Token.is_unresolved(root_volume_gib) and not 30 <= root_volume_gib <= 16384:
            raise ValueError(f"root_volume_gib: got {root_volume_gib}, allowed range: 30 to 16384")
        data = ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
            metadata_options=ec2.CfnLaunchTemplate.MetadataOptionsProperty(
                http_tokens="required", http_endpoint="enabled", http_put_response_hop_limit=2
            ),
            block_device_mappings=[
                ec2.CfnLaunchTemplate.BlockDeviceMappingProperty(
                    device_name="/dev/xvda",
                    ebs=ec2.CfnLaunchTemplate.EbsProperty(
                        volume_size=root_volume_gib, volume_type="gp3", encrypted=True, delete_on_termination=True
                    ),
                )
            ],
            network_interfaces=efa_network_interfaces(instance, security_group.security_group_id),
            user_data=cdk.Fn.base64(user_data),
            capacity_reservation_specification=(
                ec2.CfnLaunchTemplate.CapacityReservationSpecificationProperty(
                    capacity_reservation_target=ec2.CfnLaunchTemplate.CapacityReservationTargetProperty(
                        capacity_reservation_id=capacity_reservation_id
                    )
                )
                if capacity_reservation_id
                else None
            ),
        )
        self.resource = ec2.CfnLaunchTemplate(self, "Resource", launch_template_data=data)
        self.latest_version_number = self.resource.attr_latest_version_number
        self.launch_template = ec2.LaunchTemplate.from_launch_template_attributes(
            self, "Imported", launch_template_id=self.resource.ref, version_number=self.latest_version_number
        )
