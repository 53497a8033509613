"""Serving container images: AWS Deep Learning Containers or any ECR repository.

A Deep Learning Container lives in a per-region AWS account. The account is
resolved with aws-cdk-lib's region facts (``FactName.DLC_REPOSITORY_ACCOUNT``)
plus the commercial regions they lack (:mod:`dlc_regions`, from AWS's published
lists): a concrete region gives the literal account, an environment-agnostic
stack gets a CloudFormation mapping keyed by ``AWS::Region`` and template rules
that reject a region without the registry or the image tag.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import region_info
from constructs import Construct

from ml_constructs.sagemaker.dlc_regions import EXTRA_REGISTRY_ACCOUNTS, tag_problem, tag_regions

if TYPE_CHECKING:
    from runtime_profiles import RuntimeProfile

DLC_MAPPING_ID = "DlcRegistryAccountMap"

PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

# (repository, tag pattern) -> why it is end-of-life and what replaces it (docs/aws-limits.md).
END_OF_LIFE_TAGS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "djl-inference",
        re.compile(r"deepspeed"),
        "DeepSpeed support in the LMI container was deprecated in 2024; the current alternative is an "
        "LMI vLLM image (djl-inference:<ver>-lmi<ver>-cu<ver>)",
    ),
    (
        "djl-inference",
        re.compile(r"neuronx"),
        "the Neuron LMI container (transformers-neuronx) was discontinued in 2025, last tag "
        "djl-inference:0.30.0-neuronx-sdk2.20.1; current alternatives for Inferentia2 are "
        "pytorch-inference-neuronx and huggingface-pytorch-inference-neuronx (compile with the same Neuron SDK)",
    ),
)


def end_of_life_notice(repository: str, tag: str) -> str | None:
    """Why ``repository:tag`` is end-of-life and what to use instead, or None."""
    for repo, pattern, notice in END_OF_LIFE_TAGS:
        if repo == repository and pattern.search(tag):
            return notice
    return None


@dataclass(frozen=True)
class ImageAssetSource:
    """A folder with a Dockerfile, built at deploy (``ContainerImage.from_asset``)."""

    directory: str
    build_args: dict[str, str]
    exclude: list[str]


@dataclass(frozen=True)
class BoundImage:
    """An image as one model sees it: the URI, and how to let a role pull it."""

    image_uri: str
    repository_arn: str
    repository_name: str
    tag: str

    def grant_pull(self, grantee: iam.IGrantable) -> None:
        """Pull this repository's layers; ``ecr:GetAuthorizationToken`` has no resource scope."""
        iam.Grant.add_to_principal(grantee=grantee, actions=list(PULL_ACTIONS), resource_arns=[self.repository_arn])
        iam.Grant.add_to_principal(grantee=grantee, actions=["ecr:GetAuthorizationToken"], resource_arns=["*"])


class ContainerImage:
    """Where a model's serving container comes from; bound to a scope when used."""

    def __init__(
        self, repository_name: str, tag: str, repository: ecr.IRepository | None = None, *,
        end_of_life: str | None = None, asset: "ImageAssetSource | None" = None,
    ) -> None:
        if not tag or ":" in tag or "@" in tag:
            raise ValueError(f"image tag: got {tag!r}, allowed: a plain tag such as 0.24.0-neuronx-sdk2.14.1")
        self.repository_name = repository_name
        self.tag = tag
        self._repository = repository
        self._end_of_life = end_of_life
        self._asset = asset

    @classmethod
    def from_asset(
        cls, directory: str, *, build_args: dict[str, str] | None = None, exclude: list[str] | None = None,
        end_of_life: str | None = None, description: str = "image asset",
    ) -> "ContainerImage":
        """An image built from ``directory``'s Dockerfile by ``cdk deploy`` and pushed to the
        bootstrap asset repository (synth stages the folder and needs no Docker).

        ``build_args`` must be concrete strings: they are part of the asset hash.
        """
        source = ImageAssetSource(directory, dict(sorted((build_args or {}).items())), list(exclude or []))
        return cls(description, "asset", end_of_life=end_of_life, asset=source)

    @classmethod
    def deep_learning_container(
        cls, repository_name: str, tag: str, *, end_of_life: str | None = None
    ) -> "ContainerImage":
        """An AWS Deep Learning Container (``djl-inference``, ``pytorch-inference-neuronx``, ...).

        ``end_of_life``: why the image is end-of-life (a runtime profile's notice); default: the
        notice of a known end-of-life tag pattern, if any.
        """
        return cls(repository_name, tag, end_of_life=end_of_life)

    @classmethod
    def from_profile(cls, profile: "RuntimeProfile", tag: str | None = None) -> "ContainerImage":
        """A runtime profile's Deep Learning Container (``tag``: one of its verified tags; default the first)."""
        return cls.deep_learning_container(
            profile.image_repository, tag or profile.default_tag, end_of_life=profile.end_of_life
        )

    @classmethod
    def from_ecr_repository(cls, repository: ecr.IRepository, tag: str) -> "ContainerImage":
        """Any ECR repository (your own images)."""
        return cls(repository.repository_name, tag, repository)

    @property
    def end_of_life_notice(self) -> str | None:
        if self._end_of_life is not None:
            return self._end_of_life
        return None if self._repository is not None or self._asset is not None else end_of_life_notice(self.repository_name, self.tag)

    def bind(self, scope: Construct) -> BoundImage:
        if self._asset is not None:
            asset = ecr_assets.DockerImageAsset(
                scope, "ImageAsset", directory=self._asset.directory, build_args=self._asset.build_args or None,
                exclude=self._asset.exclude or None, platform=ecr_assets.Platform.LINUX_AMD64,
            )
            return BoundImage(asset.image_uri, asset.repository.repository_arn, asset.repository.repository_name,
                              asset.image_tag)
        if self._repository is not None:
            return BoundImage(
                self._repository.repository_uri_for_tag(self.tag),
                self._repository.repository_arn,
                self.repository_name,
                self.tag,
            )
        stack = cdk.Stack.of(scope)
        account = dlc_registry_account(stack, self.repository_name, self.tag)
        uri = f"{account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{self.repository_name}:{self.tag}"
        arn = stack.format_arn(service="ecr", account=account, resource="repository", resource_name=self.repository_name)
        return BoundImage(uri, arn, self.repository_name, self.tag)


def dlc_accounts() -> dict[str, str]:
    """Region -> Deep Learning Containers registry account: aws-cdk-lib's region facts plus the regions they lack."""
    fact = region_info.FactName.DLC_REPOSITORY_ACCOUNT
    known = {r.name: region_info.Fact.find(r.name, fact) for r in region_info.RegionInfo.regions}
    return dict(sorted({**{r: a for r, a in known.items() if a}, **EXTRA_REGISTRY_ACCOUNTS}.items()))


def dlc_registry_account(stack: cdk.Stack, repository: str, tag: str) -> str:
    """The registry account of ``repository:tag`` in ``stack``'s region, checked where the region is known.

    A pinned region gets the literal account, or a ValueError when the registry or the tag is
    not there. An environment-agnostic stack gets a mapping keyed by ``AWS::Region`` and rules
    that stop the deploy, before any resource changes, in a region without the registry or tag.
    """
    accounts = dlc_accounts()
    if not cdk.Token.is_unresolved(stack.region):
        if stack.region not in accounts:
            raise ValueError(
                f"image {repository}:{tag}: AWS Deep Learning Containers have no known registry account in region "
                f"{stack.region!r}; use ContainerImage.from_ecr_repository with a copy of the image"
            )
        problem = tag_problem(repository, tag, stack.region)
        if problem:
            raise ValueError(f"image_tag: {problem}")
        return accounts[stack.region]
    mapping = stack.node.try_find_child(DLC_MAPPING_ID)
    if mapping is None:
        mapping = cdk.CfnMapping(stack, DLC_MAPPING_ID, mapping={r: {"account": a} for r, a in accounts.items()})
        cdk.CfnRule(stack, "DlcRegistryInThisRegion", assertions=[cdk.CfnRuleAssertion(
            assert_=cdk.Fn.condition_contains(list(accounts), cdk.Aws.REGION),
            assert_description="AWS Deep Learning Containers have no registry in this region: deploy to one of "
            + ", ".join(accounts) + ", or serve a copy of the image from your own ECR repository",
        )])
    regions = tag_regions(repository, tag)
    rule_id = f"DlcImageInThisRegion{_safe_id(repository + tag)}"
    if regions is not None and stack.node.try_find_child(rule_id) is None:
        cdk.CfnRule(stack, rule_id, assertions=[cdk.CfnRuleAssertion(
            assert_=cdk.Fn.condition_contains(sorted(regions), cdk.Aws.REGION),
            assert_description=f"{repository}:{tag} is not published in this region; regions that have it: "
            + ", ".join(sorted(regions)),
        )])
    return mapping.find_in_map(cdk.Aws.REGION, "account")


def _safe_id(text: str) -> str:
    return "".join(c for c in text.title() if c.isalnum())
