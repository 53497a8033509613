from ml_constructs.packaging.model_package import ModelPackageAsset
from ml_constructs.packaging.properties import parse_properties, render_properties
from ml_constructs.packaging.tarball import build_model_tarball

__all__ = ["ModelPackageAsset", "build_model_tarball", "parse_properties", "render_properties"]
