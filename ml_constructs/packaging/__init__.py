from ml_constructs.packaging.model_package import ModelPackageAsset
from ml_constructs.packaging.tarball import build_model_tarball

__all__ = ["ModelPackageAsset", "build_model_tarball"]
