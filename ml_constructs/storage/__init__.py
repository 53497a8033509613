from ml_constructs.storage.artifact_location import ArtifactLocation
from ml_constructs.storage.artifact_storage import ArtifactLocations, ArtifactStorage, ArtifactStorageProps

__all__ = ["ArtifactLocation", "ArtifactLocations", "ArtifactStorage", "ArtifactStorageProps"]
