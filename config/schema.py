"""The platform's configuration schema: one frozen dataclass per section.

Defaults are the documented values of each workload (docs/workloads.md);
environment files under ``config/environments/`` only hold what differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.llm import LlmConfig
from config.multi_model import MultiModelConfig
from config.stable_diffusion import StableDiffusionConfig
from config.training import TrainingConfig
from config.typed import setting

ACCOUNT_PATTERN = r"\d{12}"
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d"


@dataclass(frozen=True)
class StorageConfig:
    """Artifact buckets: what lives where is in docs/architecture.md (Artifact storage)."""

    encryption: Literal["kms", "s3"] = setting(
        "kms", doc="kms: one customer managed key with rotation; s3: SSE-S3 (AES256)."
    )
    abort_incomplete_multipart_upload_days: int = setting(7, ge=1, le=365)
    noncurrent_version_expiration_days: int = setting(
        30, ge=1, le=3650, doc="How long overwritten or deleted versions of models and checkpoints are kept."
    )
    compile_cache_expiration_days: int = setting(
        30, ge=1, le=3650, doc="Neuron compile cache entries older than this are deleted (the cache never evicts)."
    )
    access_logs_expiration_days: int = setting(365, ge=1, le=3650)


@dataclass(frozen=True)
class PlatformConfig:
    """Everything one environment deploys."""

    environment: str = setting(doc="Set from -c env=NAME; not read from files.")
    account: str | None = setting(None, pattern=ACCOUNT_PATTERN, doc="None: environment-agnostic synth.")
    region: str | None = setting(None, pattern=REGION_PATTERN, doc="None: environment-agnostic synth.")
    stack_prefix: str = setting("MlAccel", pattern=r"[A-Za-z][A-Za-z0-9]{0,30}")
    retain_data: bool = setting(True, doc="true: buckets and keys survive stack deletion (prod).")
    tags: dict[str, str] = setting(default_factory=dict)
    storage: StorageConfig = setting(default_factory=StorageConfig)
    stable_diffusion: StableDiffusionConfig = setting(default_factory=StableDiffusionConfig)
    multi_model: MultiModelConfig = setting(default_factory=MultiModelConfig)
    llm: LlmConfig = setting(default_factory=LlmConfig)
    training: TrainingConfig = setting(default_factory=TrainingConfig)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if (self.account is None) != (self.region is None):
            found.append(("account", "account and region must be set together, or both left out (environment-agnostic)"))
        for key in self.tags:
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                found.append((f"tags.{key}", "tag keys are 1-128 characters and must not start with 'aws:'"))
        return found
