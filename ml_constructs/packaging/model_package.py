"""ModelPackageAsset: a ``model_packages/<name>/`` folder as a reproducible S3 asset."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from ml_constructs.packaging.tarball import build_model_tarball

# Each synth rebuilds the archive (milliseconds for a package of text files) and files it
# under its content hash: the same content always gets the same path, so the asset hash
# and the template stay the same. The folder only grows when package content changes.
BUILD_DIR = Path(tempfile.gettempdir()) / "ml-accel-model-packages"


class ModelPackageAsset(Construct):
    """Packs a model package folder into ``model.tar.gz`` and publishes it as a file asset.

    Props
      source_dir: the package folder (``serving.properties``, ``model.py``, ...).
      extra_files: archive path -> bytes, rendered from configuration; they
        replace files of the same name from the folder.

    Creates an ``aws_s3_assets.Asset`` (``asset``). The tarball is byte-for-byte
    reproducible, so the asset hash, and with it the template, only change when
    the package's content does: an unchanged redeploy uploads nothing.

    Attributes: ``s3_object_url`` (``s3://bucket/key.tar.gz``, what SageMaker's
    ``ModelDataUrl`` takes), ``bucket``, ``object_key``, ``sha256``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_dir: Path | str,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=BUILD_DIR) as work:
            built = Path(work) / "model.tar.gz"
            self.sha256 = build_model_tarball(source_dir, built, extra_files=extra_files)
            final = BUILD_DIR / self.sha256 / "model.tar.gz"
            final.parent.mkdir(exist_ok=True)
            os.replace(built, final)  # atomic; concurrent synths write identical bytes
        self.asset = s3_assets.Asset(self, "Asset", path=str(final))
        self.bucket = self.asset.bucket
        self.object_key = self.asset.s3_object_key
        self.s3_object_url = self.asset.s3_object_url

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """``s3:GetObject`` on this one object: no wildcard, nothing else in the asset bucket."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[self.bucket.arn_for_objects(self.object_key)],
        )
